//! Tests of the loader: model sources by shape, folders, GGUF folders, refused configs.
use super::*;

#[test]
fn model_specs_parse_by_shape() {
    assert_eq!(
        ModelSource::parse("smollm2-135m-instruct"),
        ModelSource::Default("smollm2-135m-instruct".into())
    );
    assert_eq!(
        ModelSource::parse("/no/such/model.gguf"),
        ModelSource::Gguf("/no/such/model.gguf".into())
    );
    assert_eq!(
        ModelSource::parse("./no-such-folder"),
        ModelSource::Folder("./no-such-folder".into())
    );
    assert_eq!(
        ModelSource::parse("Qwen/Qwen3-0.6B@abc"),
        ModelSource::Hub {
            id: "Qwen/Qwen3-0.6B".into(),
            revision: Some("abc".into()),
            gguf_file: None
        }
    );
}

/// A config with fewer layers than the weights (or no biases where they have some) is
/// refused, naming a tensor it would ignore.
#[test]
fn weights_the_config_does_not_use_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_tiny_folder(dir.path(), Family::Llama, 3)?;
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let layers = config["num_hidden_layers"].as_u64().unwrap();
    config["num_hidden_layers"] = (layers - 1).into();
    std::fs::write(&path, config.to_string())?;
    let err = load_folder(dir.path(), DType::F32, &Device::Cpu)
        .err()
        .expect("a truncated config must not load");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&format!("`model.layers.{}.", layers - 1)) && msg.contains("layer count"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn a_zero_context_in_config_json_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_tiny_folder(dir.path(), Family::Llama, 3)?;
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    config["max_position_embeddings"] = 0.into();
    std::fs::write(&path, config.to_string())?;
    let err = load_folder(dir.path(), DType::F32, &Device::Cpu)
        .err()
        .expect("a zero context must not load");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("`max_position_embeddings` is 0") && msg.contains("config.json"),
        "{msg}"
    );
    Ok(())
}

/// What `lab setup` leaves: a cache folder holding one .gguf file and nothing else.
#[test]
fn a_folder_holding_one_gguf_file_loads_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    super::super::tiny_models::write_tiny_gguf(&dir.path().join("tiny.gguf"), 8)?;
    let source = ModelSource::parse(&dir.path().display().to_string());
    assert_eq!(source, ModelSource::Folder(dir.path().to_path_buf()));
    let loaded = load(&source, DType::F32, &Device::Cpu)?;
    assert_eq!(loaded.decoder.config.num_layers, 2);
    Ok(())
}

#[test]
fn a_folder_holding_several_gguf_files_names_them() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for name in ["a.gguf", "b.gguf"] {
        super::super::tiny_models::write_tiny_gguf(&dir.path().join(name), 8)?;
    }
    let err = load(
        &ModelSource::Folder(dir.path().to_path_buf()),
        DType::F32,
        &Device::Cpu,
    )
    .err()
    .expect("which file is meant is unclear");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("several .gguf files (`a.gguf`, `b.gguf`)") && msg.contains("--model"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn an_empty_folder_says_what_a_model_folder_holds() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let err = load(
        &ModelSource::Folder(dir.path().to_path_buf()),
        DType::F32,
        &Device::Cpu,
    )
    .err()
    .expect("nothing to load");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("neither config.json") && msg.contains("nor a .gguf file"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn a_leading_tilde_is_the_home_folder() {
    let home = Path::new("/home/someone");
    assert_eq!(
        expand_home("~/models/x.gguf", Some(home)),
        PathBuf::from("/home/someone/models/x.gguf")
    );
    assert_eq!(expand_home("~", Some(home)), home.to_path_buf());
    for unchanged in ["~other/x", "a/~/b", "./~"] {
        assert_eq!(expand_home(unchanged, Some(home)), PathBuf::from(unchanged));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        assert_eq!(
            ModelSource::parse("~/no-such-model.gguf"),
            ModelSource::Gguf(PathBuf::from(home).join("no-such-model.gguf"))
        );
    }
}
