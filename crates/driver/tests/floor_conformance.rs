//! The shared conformance suite for `overhead`'s floor client (one thread per task,
//! blocking sockets): it must be as correct as the backends it is the floor of.

chimeraforge_conformance::conformance_tests!(chimeraforge::overhead::floor::Floor);
