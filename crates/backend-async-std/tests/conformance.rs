//! The shared conformance suite for async-std.

chimeraforge_conformance::conformance_tests!(chimeraforge_backend_async_std::AsyncStd);
chimeraforge_conformance::tls_conformance_tests!(chimeraforge_backend_async_std::AsyncStd);
