//! The AnalysisRun controller (work in progress).
