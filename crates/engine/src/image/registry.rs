//! Placeholder: filled by the registry slice (see mod.rs).
