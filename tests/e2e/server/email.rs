//! Email end to end (being written).
