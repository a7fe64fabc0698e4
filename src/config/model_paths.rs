//! `model.path` and `encoder.path` hold what their loaders read: checked by `lab check` (and
//! `lab bench` before it runs anything) from the folder's listing, without loading a model. A
//! wrong encoder folder otherwise surfaced only when a strategy first embedded, after the
//! first training.
use std::path::{Path, PathBuf};

use super::diagnose::location;
use super::Experiment;

/// What a language model folder holds for the loader: config.json (with tokenizer.json and
/// safetensors weights beside it), or a single .gguf file.
const MODEL_FOLDER: &str = "config.json, tokenizer.json and *.safetensors, or one .gguf file";
/// What a sentence-encoder folder holds for the loader.
const ENCODER_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// One line per problem, each naming the key, the file and line, and what the path should be.
/// Paths resolve against `base_dir` (the folder `lab` runs in; `.` leaves them as written).
pub fn model_path_problems(exp: &Experiment, base_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut add = |key: &str, message: String| {
        problems.push(format!(
            "`{key}` in {}: {message}",
            location(exp.source.as_ref(), key)
        ));
    };
    if let Some(path) = &exp.model.path {
        let model = resolve(base_dir, path);
        if let Some(message) = model_problem(&model, exp.model.gguf_file.is_some()) {
            add("model.path", message);
        } else if let Some(file) = exp.model.gguf_file.as_ref().filter(|_| model.is_dir()) {
            if !model.join(file).is_file() {
                let hint = super::diagnose::did_you_mean(file, &ggufs_in(&model));
                add(
                    "model.gguf_file",
                    format!(
                        "{} holds no {file}; {hint}its .gguf files: {}",
                        model.display(),
                        ggufs_in(&model).join(", ")
                    ),
                );
            }
        }
    }
    if let Some(path) = &exp.encoder.path {
        let encoder = resolve(base_dir, path);
        if let Some(message) = encoder_problem(&encoder) {
            add("encoder.path", message);
        }
    }
    problems
}

fn model_problem(path: &Path, gguf_file_set: bool) -> Option<String> {
    let shown = path.display();
    if !path.exists() {
        return Some(format!(
            "{shown} does not exist: pass a model folder ({MODEL_FOLDER}) or a .gguf file"
        ));
    }
    if path.is_file() {
        return (path.extension().is_none_or(|e| e != "gguf")).then(|| {
            format!(
                "{shown} is a file but not a .gguf file: pass a .gguf file or a model folder \
                 ({MODEL_FOLDER})"
            )
        });
    }
    if path.join("config.json").is_file() || gguf_file_set {
        return None;
    }
    match ggufs_in(path).as_slice() {
        [] => Some(format!(
            "folder {shown} holds no model: it needs {MODEL_FOLDER}"
        )),
        [_] => None,
        several => Some(format!(
            "folder {shown} holds several .gguf files ({}): set model.gguf_file to the one to \
             load, or model.path to its path",
            several.join(", ")
        )),
    }
}

fn encoder_problem(path: &Path) -> Option<String> {
    let shown = path.display();
    let needs = ENCODER_FILES.join(", ");
    if !path.exists() {
        return Some(format!(
            "{shown} does not exist: pass a sentence-transformers folder ({needs})"
        ));
    }
    if !path.is_dir() {
        return Some(format!(
            "{shown} is a file: pass the sentence-transformers folder that holds {needs}"
        ));
    }
    let missing: Vec<&str> = ENCODER_FILES
        .into_iter()
        .filter(|f| !path.join(f).is_file())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "folder {shown} lacks {}: a sentence-transformers folder holds {needs}",
            missing.join(", ")
        )
    })
}

fn ggufs_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if base_dir == Path::new(".") {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}
