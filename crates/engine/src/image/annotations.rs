//! Placeholder: filled by the annotations slice (see mod.rs).
