//! Finding and forming the splits: test subsets and pool subsamples fixed by the dataset,
//! ratio splits, hub shards, and missing, empty, conflicting or unusable split files.
use super::*;

#[test]
fn test_subset_and_pool_are_fixed_by_dataset_not_by_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("toy");
    numbered_dataset(&data, 200, 100);
    let mut c = cfg(&data);
    c.test_size = Some(10);
    let a = load_dataset(&c, dir.path()).unwrap();
    c.pool_size = Some(50);
    let b = load_dataset(&c, dir.path()).unwrap();
    assert_eq!(
        a.test, b.test,
        "the pool subsample must not move the test subset"
    );
    assert_eq!(a.test.len(), 10);
    assert!(
        ids(&a.test).windows(2).all(|w| w[0] < w[1]),
        "kept in id order"
    );
    assert_ne!(
        ids(&a.test),
        (0..10).collect::<Vec<_>>(),
        "a random subset, not the head"
    );
    assert_eq!(b.train.len(), 50);
    assert_eq!(b.train_rows, 200);
    assert_eq!(
        load_dataset(&c, dir.path()).unwrap().train,
        b.train,
        "deterministic"
    );
    // The subset is keyed by the dataset: another dataset picks other rows.
    let other = dir.path().join("toy2");
    numbered_dataset(&other, 200, 100);
    let mut c2 = c.clone();
    c2.path = other;
    assert_ne!(
        ids(&load_dataset(&c2, dir.path()).unwrap().test),
        ids(&a.test)
    );
    for e in &b.train {
        assert_eq!(e.input, format!("question {}", e.id), "ids are row indices");
    }
    c.test_size = Some(101);
    let err = load_dataset(&c, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("`data.test_size` = 101 but the test split has only 100 rows"),
        "{err}"
    );
}

#[test]
fn ratios_split_train_into_disjoint_parts_with_original_ids() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "all.jsonl",
        &jsonl((0..100).map(|i| (format!("q{i}"), format!("a{i}")))),
    );
    let mut c = cfg(&dir.path().join("all.jsonl"));
    c.test_ratio = Some(0.2);
    c.dev_ratio = Some(0.1);
    let d = load_dataset(&c, Path::new("/")).unwrap();
    assert_eq!((d.train.len(), d.dev.len(), d.test.len()), (70, 10, 20));
    let mut all: Vec<u64> = [ids(&d.train), ids(&d.dev), ids(&d.test)].concat();
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    for e in d.test.iter().chain(&d.dev) {
        assert_eq!(e.input, format!("q{}", e.id));
    }
    assert_eq!(load_dataset(&c, Path::new("/")).unwrap().test, d.test);
    assert!(
        d.source.contains("test=split from train (0.2)"),
        "{}",
        d.source
    );
}

#[test]
fn missing_or_conflicting_splits_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.jsonl",
        &jsonl([("q".into(), "a".into())]),
    );
    let err = load_dataset(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has no test split") && err.contains("data.test_ratio"),
        "{err}"
    );
    write(dir.path(), "test.jsonl", &jsonl([("q".into(), "a".into())]));
    let mut c = cfg(dir.path());
    c.test_ratio = Some(0.5);
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(err.contains("`data.test_ratio` is set but"), "{err}");
    write(dir.path(), "test.csv", "q,a\nx,y\n");
    let err = load_dataset(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("several candidate test files") && err.contains("`data.test`"),
        "{err}"
    );
    let mut c = cfg(dir.path());
    c.test = Some("test.csv".into());
    assert_eq!(load_dataset(&c, Path::new("/")).unwrap().test[0].input, "x");
    c.path = dir.path().join("nope");
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("`data.path` =") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn a_file_serving_two_splits_or_data_train_beside_a_file_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    numbered_dataset(dir.path(), 10, 5);
    // The test split named as the train file: the pool would be the test set.
    let mut c = cfg(dir.path());
    c.test = Some("train.jsonl".into());
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("train.jsonl is in both the train split (`data.train`) and the test split (`data.test`)"),
        "{err}"
    );
    // Also through another spelling of the same file.
    let mut c = cfg(dir.path());
    c.dev = Some("./test.jsonl".into());
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("in both the dev split (`data.dev`) and the test split (`data.test`)"),
        "{err}"
    );
    // data.path a file and data.test the same file.
    let mut c = cfg(&dir.path().join("train.jsonl"));
    c.test = Some("train.jsonl".into());
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("in both the train split (`data.path`) and the test split (`data.test`)"),
        "{err}"
    );
    // data.path a file: data.train cannot name another train file.
    let mut c = cfg(&dir.path().join("test.jsonl"));
    c.train = Some("train.jsonl".into());
    c.test_ratio = Some(0.2);
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("`data.train` = \"train.jsonl\" is set but `data.path` =")
            && err.contains("is a file"),
        "{err}"
    );
}

#[test]
fn a_test_file_with_no_usable_rows_is_named_not_called_missing() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.jsonl",
        &jsonl([("q".into(), "a".into())]),
    );
    write(
        dir.path(),
        "test.jsonl",
        "{\"question\": \"t\", \"a\": \"u\"}\n{\"question\": \"v\", \"a\": \"w\"}\n",
    );
    let mut c = cfg(dir.path());
    c.on_bad_row = OnBadRow::Skip;
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("test.jsonl gave 0 usable rows (2 skipped)")
            && err.contains("data.input_field = `q`")
            && !err.contains("has no test split"),
        "{err}"
    );
}

/// An empty file (or one with only blank lines or a CSV header) is named as having no rows,
/// not called a field mapping to fix or a missing split.
#[test]
fn an_empty_data_file_is_named_as_having_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let rows = jsonl([("q".into(), "a".into())]);
    for (name, text) in [
        ("train.jsonl", ""),
        ("train.jsonl", "\n \n\r\n"),
        ("train.csv", "q,a\n"),
        ("train.json", "  \n"),
        ("train.json", "[]"),
    ] {
        let _ = fs::remove_dir_all(dir.path());
        write(dir.path(), name, text);
        write(dir.path(), "test.jsonl", &rows);
        let err = load_dataset(&cfg(dir.path()), Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "the train split {} has no rows",
                dir.path().join(name).display()
            )) && err.contains("point data.path"),
            "{name} {text:?}: {err}"
        );
    }
    let _ = fs::remove_dir_all(dir.path());
    write(dir.path(), "train.jsonl", &rows);
    write(dir.path(), "test.jsonl", "");
    let err = load_dataset(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the test split")
            && err.contains("test.jsonl has no rows")
            && err.contains("data.test_ratio")
            && !err.contains("field mapping"),
        "{err}"
    );
    // Every train row skipped as bad is named too.
    write(
        dir.path(),
        "train.jsonl",
        "{\"x\": \"1\"}\n{\"x\": \"2\"}\n",
    );
    write(dir.path(), "test.jsonl", &rows);
    let mut c = cfg(dir.path());
    c.on_bad_row = OnBadRow::Skip;
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("train.jsonl gave 0 usable rows (all 2 skipped as bad)")
            && err.contains("data.input_field = `q`"),
        "{err}"
    );
}

#[test]
fn leftover_or_missing_hub_shards_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let rows = jsonl([("q".into(), "a".into())]);
    write(dir.path(), "data/test-00000-of-00001.jsonl", &rows);
    write(dir.path(), "data/train-00000-of-00002.jsonl", &rows);
    write(dir.path(), "data/train-00001-of-00002.jsonl", &rows);
    assert_eq!(
        load_dataset(&cfg(dir.path()), Path::new("/"))
            .unwrap()
            .files
            .train
            .len(),
        2
    );
    // A leftover shard of an earlier download (one shard in all).
    write(dir.path(), "data/train-00000-of-00001.jsonl", &rows);
    let err = load_dataset(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("more than one download") && err.contains("of 1: train-00000-of-00001.jsonl"),
        "{err}"
    );
    fs::remove_file(dir.path().join("data/train-00000-of-00001.jsonl")).unwrap();
    fs::remove_file(dir.path().join("data/train-00001-of-00002.jsonl")).unwrap();
    let err = load_dataset(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not one complete set of 2: missing [00001]"),
        "{err}"
    );
}
