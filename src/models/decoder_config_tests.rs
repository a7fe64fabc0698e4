//! Tests of reading config.json and GGUF metadata into a decoder config.
use super::*;

#[test]
fn smollm2_config_json() -> Result<()> {
    let c = DecoderConfig::from_hf_json(
        r#"{"model_type":"llama","vocab_size":49152,"hidden_size":576,"intermediate_size":1536,
        "num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,
        "rms_norm_eps":1e-5,"rope_theta":100000,"tie_word_embeddings":true,"hidden_act":"silu"}"#,
    )?;
    assert_eq!(c.head_dim, 64);
    assert_eq!(c.family, Family::Llama);
    assert!(c.tie_word_embeddings);
    // 134.5M as published.
    assert_eq!(c.param_count() / 100_000, 1345);
    Ok(())
}

#[test]
fn gemma3_pattern_and_scalar() -> Result<()> {
    let c = DecoderConfig::from_hf_json(
        r#"{"model_type":"gemma3_text","vocab_size":100,"hidden_size":64,"intermediate_size":128,
        "num_hidden_layers":7,"num_attention_heads":4,"num_key_value_heads":1,"head_dim":32,
        "query_pre_attn_scalar":64,"sliding_window":8,"sliding_window_pattern":6}"#,
    )?;
    assert_eq!(
        c.sliding_layers,
        vec![true, true, true, true, true, false, true]
    );
    assert!((c.attn_scale - 0.125).abs() < 1e-12);
    assert_eq!(c.activation, Activation::GeluTanh);
    assert_eq!(c.embed_scale, Some(8.0));
    Ok(())
}

#[test]
fn llama3_rope_scaling_round_trips() -> Result<()> {
    let c = DecoderConfig::from_hf_json(
        r#"{"model_type":"llama","vocab_size":10,"hidden_size":64,"intermediate_size":128,
        "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
        "rope_theta":500000.0,"rope_scaling":{"rope_type":"llama3","factor":32.0,
        "low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}"#,
    )?;
    assert!(matches!(c.rope_scaling, RopeScaling::Llama3 { factor, .. } if factor == 32.0));
    let again = DecoderConfig::from_hf_json(&c.to_hf_json().to_string())?;
    assert_eq!(again, c);
    let err = DecoderConfig::from_hf_json(&c.to_hf_json().to_string().replace("llama3", "yarn"))
        .unwrap_err();
    assert!(format!("{err:#}").contains("yarn"), "{err:#}");
    Ok(())
}

const SMALL: &str = r#""vocab_size":10,"hidden_size":64,"intermediate_size":128,
    "num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":2"#;

/// Qwen's window applies only with `use_sliding_window`, from `max_window_layers` on; it
/// was ignored either way.
#[test]
fn qwen_windows_the_layers_from_max_window_layers_when_asked() -> Result<()> {
    let config = |use_window: bool| {
        DecoderConfig::from_hf_json(&format!(
            r#"{{"model_type":"qwen2",{SMALL},"sliding_window":8,
            "use_sliding_window":{use_window},"max_window_layers":1}}"#
        ))
    };
    let windowed = config(true)?;
    assert_eq!(windowed.sliding_layers, [false, true, true]);
    assert_eq!(windowed.sliding_window, Some(8));
    assert_eq!(
        DecoderConfig::from_hf_json(&windowed.to_hf_json().to_string())?,
        windowed
    );
    let full = config(false)?;
    assert_eq!(full.sliding_layers, [false, false, false]);
    assert_eq!(full.sliding_window, None);
    Ok(())
}

#[test]
fn a_mistral_window_survives_the_round_trip_a_llama_has_none() -> Result<()> {
    let mistral = DecoderConfig::from_hf_json(&format!(
        r#"{{"model_type":"mistral",{SMALL},"sliding_window":8}}"#
    ))?;
    assert_eq!(mistral.sliding_layers, [true, true, true]);
    assert_eq!(
        DecoderConfig::from_hf_json(&mistral.to_hf_json().to_string())?,
        mistral
    );
    // transformers' LlamaConfig has no window: a stray key changes nothing.
    let llama = DecoderConfig::from_hf_json(&format!(
        r#"{{"model_type":"llama",{SMALL},"sliding_window":8}}"#
    ))?;
    assert_eq!(llama.sliding_layers, [false, false, false]);
    Ok(())
}

/// Windowed layers rotate unscaled; refused rather than silently so for a scaled llama.
#[test]
fn a_window_with_rope_scaling_outside_gemma_is_refused() {
    let err = DecoderConfig::from_hf_json(&format!(
        r#"{{"model_type":"mistral",{SMALL},"sliding_window":8,
        "rope_scaling":{{"rope_type":"linear","factor":2.0}}}}"#
    ))
    .unwrap_err();
    assert!(format!("{err:#}").contains("gemma3 only"), "{err:#}");
}

/// Sliding layers without a window ran with the global rotation and mask: Gemma 3's local
/// layers rotate with another base, so the numbers were wrong without an error.
#[test]
fn sliding_layers_without_a_window_are_refused() {
    let err = DecoderConfig::from_hf_json(&format!(
        r#"{{"model_type":"gemma3_text",{SMALL},"layer_types":
        ["sliding_attention","sliding_attention","full_attention"]}}"#
    ))
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("`sliding_window` is missing"),
        "{err:#}"
    );
}

/// Was "rope type `` is not supported".
#[test]
fn rope_scaling_without_a_type_says_which_key_is_missing() {
    let err = DecoderConfig::from_hf_json(&format!(
        r#"{{"model_type":"llama",{SMALL},"rope_scaling":{{"factor":2.0}}}}"#
    ))
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("`rope_scaling` has no `rope_type`"),
        "{err:#}"
    );
}

/// Was "unexpected field types: missing field `hidden_size`".
#[test]
fn a_missing_field_is_not_called_a_type_error() {
    let err = DecoderConfig::from_hf_json(r#"{"model_type":"llama","vocab_size":10}"#).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("missing field") && !msg.contains("unexpected field types"),
        "{msg}"
    );
}

/// A Qwen2 reward model (tied embeddings, a `score` head) loaded and scored with its
/// input embeddings as the LM head.
#[test]
fn a_checkpoint_without_a_language_model_head_is_refused() -> Result<()> {
    let config = |architectures: &str| {
        DecoderConfig::from_hf_json(&format!(
            r#"{{"model_type":"qwen2",{SMALL},"tie_word_embeddings":true,
            "architectures":{architectures}}}"#
        ))
    };
    let err = config(r#"["Qwen2ForSequenceClassification"]"#).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("Qwen2ForSequenceClassification") && msg.contains("ForCausalLM"),
        "{msg}"
    );
    config(r#"["Qwen2ForCausalLM"]"#)?;
    config(r#"["Gemma3ForConditionalGeneration"]"#)?;
    Ok(())
}

#[test]
fn unknown_architecture_is_named() {
    let err = DecoderConfig::from_hf_json(r#"{"model_type":"gpt_neox"}"#).unwrap_err();
    assert!(format!("{err:#}").contains("gpt_neox"), "{err:#}");
}
