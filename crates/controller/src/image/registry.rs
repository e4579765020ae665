//! Placeholder: the OCI distribution API client (registry slice).
