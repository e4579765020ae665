//! Placeholder: filled by the writeback slice (see mod.rs).
