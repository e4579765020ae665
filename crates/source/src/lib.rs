//! Git sources (being written).
