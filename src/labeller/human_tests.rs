//! Tests of `human.rs` (a child module of it, so they reach its private items).
use super::*;

fn example(id: u64, input: &str) -> Example {
    Example {
        id,
        input: input.to_string(),
        output: "gold".to_string(),
        references: vec!["gold".to_string()],
    }
}

#[test]
fn waits_for_every_label_written_by_another_thread() {
    let dir = tempfile::tempdir().unwrap();
    let cell = dir.path().to_path_buf();
    let data = crate::config::DataConfig {
        input_template: "Subject for: {input}".into(),
        system_prompt: Some("Be brief.".into()),
        ..Default::default()
    };
    let mut labeller =
        HumanLabeller::new(cell.clone(), Duration::from_millis(5)).with_prompt(&data);
    let writer_cell = cell.clone();
    let writer = std::thread::spawn(move || {
        // Wait for the batch, check it, then label out of order with a relabel and a blank.
        let batch = loop {
            if let Some(b) = read_pending(&writer_cell).unwrap() {
                break b;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let save = |id, output: &str, seconds| {
            append_label(
                &writer_cell,
                &SavedLabel {
                    id,
                    output: output.to_string(),
                    seconds,
                },
            )
            .unwrap();
            std::thread::sleep(Duration::from_millis(20));
        };
        save(9, "first try", 1.0);
        save(3, "  ", 0.5);
        save(9, "Lunch on Friday", 4.0);
        assert!(
            pending_path(&writer_cell).exists(),
            "the run must wait while id 3 has only a blank label"
        );
        save(3, "Budget review", 2.5);
        batch
    });
    let outcome = labeller
        .label(&[example(3, "q3 numbers"), example(9, "food")], &[])
        .unwrap();
    let batch = writer.join().unwrap();
    assert_eq!(batch.items.len(), 2);
    assert_eq!(batch.items[0].input, "Subject for: q3 numbers");
    assert_eq!(batch.items[0].system_prompt, "Be brief.");
    let LabelOutcome::Complete(labels) = outcome else {
        panic!("a person has no money budget");
    };
    // The latest text, with the time of every save of the item (blank ones too).
    let got: Vec<(u64, &str, f64, u32)> = labels
        .iter()
        .map(|l| (l.id, l.output.as_str(), l.seconds, l.edits))
        .collect();
    assert_eq!(
        got,
        [(3, "Budget review", 3.0, 1), (9, "Lunch on Friday", 5.0, 1)]
    );
    assert!(labels.iter().all(|l| l.cost == 0.0));
    assert!(!pending_path(&cell).exists(), "a finished batch is removed");
}

fn pending_one(cell: &Path, ids: &[u64]) {
    std::fs::create_dir_all(annotation_dir(cell)).unwrap();
    let batch = PendingBatch {
        items: ids
            .iter()
            .map(|&id| PendingItem {
                id,
                input: format!("in {id}"),
                system_prompt: String::new(),
                guess: String::new(),
            })
            .collect(),
    };
    atomic_write_string(&pending_path(cell), &serde_json::to_string(&batch).unwrap()).unwrap();
}

fn label(id: u64, output: &str) -> SavedLabel {
    SavedLabel {
        id,
        output: output.into(),
        seconds: 1.0,
    }
}

fn append_raw(cell: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(labels_path(cell))
        .unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn labels_saved_before_a_crash_count_and_a_torn_line_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let cell = dir.path();
    pending_one(cell, &[1, 2]);
    append_label(cell, &label(1, "kept")).unwrap();
    // A crash mid-append leaves half a line; the next save cuts it off.
    append_raw(cell, b"{\"id\": 2, \"outp");
    append_label(cell, &label(2, "after crash")).unwrap();
    let mut labeller = HumanLabeller::new(cell.to_path_buf(), Duration::from_millis(1));
    let out = labeller
        .label(&[example(1, "a"), example(2, "b")], &[])
        .unwrap();
    let outputs: Vec<&str> = out.labels().iter().map(|l| l.output.as_str()).collect();
    assert_eq!(outputs, ["kept", "after crash"]);

    // A whole line that does not read (a hand edit) is named, not silently dropped.
    append_raw(cell, b"{\"id\": \"three\", \"output\": \"x\"}\n");
    let err = format!("{:#}", read_labels(cell).unwrap_err());
    assert!(err.contains("labels.jsonl line 3"), "{err}");
}

#[test]
fn a_torn_last_line_never_stops_labelling_whatever_it_ends_with() {
    let dir = tempfile::tempdir().unwrap();
    let cell = dir.path();
    pending_one(cell, &[1, 2, 3]);
    append_label(cell, &label(1, "café")).unwrap();
    // Cut inside a multi-byte character (not UTF-8), and cut right after a `}` inside
    // the text: both are unfinished appends, asked for again.
    for torn in [
        &b"{\"id\":2,\"output\":\"caf\xc3"[..],
        b"{\"id\":2,\"output\":\"a}",
    ] {
        let before = std::fs::read(labels_path(cell)).unwrap();
        let known = read_labels(cell).unwrap();
        append_raw(cell, torn);
        assert_eq!(read_labels(cell).unwrap(), known, "{torn:?}");
        append_label(cell, &label(2, "b}")).unwrap();
        let saved = read_labels(cell).unwrap();
        assert_eq!(saved[&2].output, "b}");
        let after = std::fs::read(labels_path(cell)).unwrap();
        assert!(after.starts_with(&before) && after.ends_with(b"\n"));
        assert!(!after.windows(torn.len()).any(|w| w == torn), "cut off");
    }
    // A label written in full but for its newline counts, and is kept by the next save.
    append_raw(cell, b"{\"id\":3,\"output\":\"whole\",\"seconds\":2.0}");
    assert_eq!(read_labels(cell).unwrap()[&3].output, "whole");
    append_label(cell, &label(1, "again")).unwrap();
    let saved = read_labels(cell).unwrap();
    assert_eq!(
        (saved[&3].output.as_str(), saved[&1].output.as_str()),
        ("whole", "again")
    );

    // A complete line that is not UTF-8 is an error with the file and line (line 5: the
    // second save of "b}" above found that text saved already and added no line).
    append_raw(cell, b"{\"id\":4,\"output\":\"\xff\"}\n");
    let err = format!("{:#}", read_labels(cell).unwrap_err());
    assert!(
        err.contains("labels.jsonl line 5") && err.contains("UTF-8"),
        "{err}"
    );
}

#[test]
fn saves_need_a_waiting_batch_and_the_version_shown() {
    let dir = tempfile::tempdir().unwrap();
    let cell = dir.path().join("seed-0");
    pending_one(&cell, &[1]);
    let v0 = label_version(None);
    assert_eq!(
        save_label(&cell, &label(1, "a"), Some(&v0)).unwrap(),
        SaveOutcome::Saved
    );
    // A second tab still showing "none" is told what is saved now.
    assert_eq!(
        save_label(&cell, &label(1, "b"), Some(&v0)).unwrap(),
        SaveOutcome::Changed(Some(ItemLabel::first(label(1, "a"))))
    );
    let v1 = label_version(Some(&ItemLabel::first(label(1, "a"))));
    assert_ne!(v1, v0);
    assert_eq!(
        save_label(&cell, &label(1, "c"), Some(&v1)).unwrap(),
        SaveOutcome::Saved
    );
    assert_eq!(read_labels(&cell).unwrap()[&1].output, "c");

    // The same text again from a page that still shows an older version (a double
    // click on Save, a second tab typing the same label) is saved already: no conflict,
    // and no second line.
    let lines = std::fs::read_to_string(labels_path(&cell)).unwrap();
    for stale in [&v0, &v1] {
        assert_eq!(
            save_label(&cell, &label(1, "c"), Some(stale)).unwrap(),
            SaveOutcome::Saved
        );
    }
    assert_eq!(std::fs::read_to_string(labels_path(&cell)).unwrap(), lines);

    // The run took the batch: nothing is written.
    std::fs::remove_file(pending_path(&cell)).unwrap();
    let before = std::fs::read(labels_path(&cell)).unwrap();
    assert_eq!(
        save_label(&cell, &label(1, "d"), None).unwrap(),
        SaveOutcome::BatchGone
    );
    let err = format!("{:#}", append_label(&cell, &label(1, "d")).unwrap_err());
    assert!(err.contains("was not saved"), "{err}");
    assert_eq!(std::fs::read(labels_path(&cell)).unwrap(), before);

    // `--fresh` removed the cell: a late save does not bring its folder back.
    std::fs::remove_dir_all(&cell).unwrap();
    assert_eq!(
        save_label(&cell, &label(1, "e"), None).unwrap(),
        SaveOutcome::BatchGone
    );
    assert!(!cell.exists());
}

/// A researcher measuring annotation cost needs the time of the first label and of every
/// change to it: before, a relabel's line replaced the item's time with its own.
#[test]
fn relabelling_adds_its_time_to_the_first_and_counts_the_edit() {
    let dir = tempfile::tempdir().unwrap();
    let cell = dir.path();
    pending_one(cell, &[1, 2]);
    let save = |id, output: &str, seconds| {
        append_label(
            cell,
            &SavedLabel {
                id,
                output: output.into(),
                seconds,
            },
        )
        .unwrap();
    };
    save(1, "first", 30.0);
    save(2, "other", 4.0);
    save(1, "second", 12.5);
    save(1, "third", 2.5);
    let saved = read_labels(cell).unwrap();
    assert_eq!(
        saved[&1],
        ItemLabel {
            id: 1,
            output: "third".into(),
            seconds: 45.0,
            edits: 2
        }
    );
    assert_eq!((saved[&2].seconds, saved[&2].edits), (4.0, 0));
    // labels.jsonl keeps one line per save, each with its own time, as before.
    let lines: Vec<SavedLabel> = std::fs::read_to_string(labels_path(cell))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let times: Vec<f64> = lines.iter().map(|l| l.seconds).collect();
    assert_eq!(times, [30.0, 4.0, 12.5, 2.5]);

    // What the run records in state.json: the total and the edits.
    let mut labeller = HumanLabeller::new(cell.to_path_buf(), Duration::from_millis(1));
    let out = labeller
        .label(&[example(1, "a"), example(2, "b")], &[])
        .unwrap();
    let recorded: Vec<(f64, u32)> = out.labels().iter().map(|l| (l.seconds, l.edits)).collect();
    assert_eq!(recorded, [(45.0, 2), (4.0, 0)]);
    let json = serde_json::to_value(&out.labels()[0]).unwrap();
    assert_eq!(
        (json["seconds"].as_f64(), json["edits"].as_u64()),
        (Some(45.0), Some(2))
    );
    // An item never changed writes no `edits`, so other labellers' states read as before;
    // and a label from a state written before `edits` existed reads as never changed.
    assert!(serde_json::to_value(&out.labels()[1])
        .unwrap()
        .get("edits")
        .is_none());
    let old: Label = serde_json::from_str(
        r#"{"id":7,"output":"x","cost":0.0,"input_tokens":0,"output_tokens":0,"seconds":3.5}"#,
    )
    .unwrap();
    assert_eq!((old.seconds, old.edits), (3.5, 0));
}
