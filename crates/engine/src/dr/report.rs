//! The drill report (Markdown, JSON, JUnit) and the validation report. (Slice in
//! progress.)
