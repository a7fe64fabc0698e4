//! The tiny experiment the web tests launch from the form: the shipped AESLC data and the
//! in-process `tiny-random-llama`, 2 labels then 2 more over one iteration, so a run takes
//! seconds.
#![allow(dead_code)]

/// The launch form's fields for it, by name (each field's element id is the same); the name,
/// strategy and labeller are each test's own.
pub const TINY_FORM: [(&str, &str); 8] = [
    ("pool_size", "20"),
    ("test_size", "4"),
    ("model", "tiny-random-llama"),
    ("seeds", "0"),
    ("init_size", "2"),
    ("query_size", "2"),
    ("iterations", "1"),
    ("epochs", "1"),
];
