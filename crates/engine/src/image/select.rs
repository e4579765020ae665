//! Placeholder: filled by the select slice (see mod.rs).
