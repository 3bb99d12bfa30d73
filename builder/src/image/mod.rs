//! Image assembly.
