//! The shared conformance suite, once per tokio backend.

mod tokio_default {
    chimeraforge_conformance::conformance_tests!(chimeraforge_backend_tokio::TokioDefault);
    chimeraforge_conformance::tls_conformance_tests!(chimeraforge_backend_tokio::TokioDefault);
}

mod tokio_localset {
    chimeraforge_conformance::conformance_tests!(chimeraforge_backend_tokio::TokioLocalSet);
    chimeraforge_conformance::tls_conformance_tests!(chimeraforge_backend_tokio::TokioLocalSet);
}
