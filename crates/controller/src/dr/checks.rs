//! Validation checks of a plan's active side (apps, HTTP, TCP, PromQL). (Slice in
//! progress.)
