//! Health assessment (being written).
