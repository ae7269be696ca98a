//! The shared conformance suite for smol-1kb.

chimeraforge_conformance::conformance_tests!(chimeraforge_backend_smol::Smol1Kb);
chimeraforge_conformance::tls_conformance_tests!(chimeraforge_backend_smol::Smol1Kb);
