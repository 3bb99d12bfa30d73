//! dockerignore.
