//! Diff and normalisation (being written).
