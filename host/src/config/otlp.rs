//! The trace-export settings of `veneer serve` (`--otlp-endpoint` and what
//! goes with it), a group of [`super::ServeConfig`], and their checks. Owns
//! nothing else: the exporter is `telemetry`'s.

use clap::Args;

/// OTLP trace export settings (off unless `--otlp-endpoint` is set).
#[derive(Debug, Clone, Args)]
pub struct OtlpConfig {
    /// Export the request, plugin-call, host-call and job spans as
    /// OpenTelemetry traces to this OTLP/HTTP collector (protobuf, posted to
    /// `<endpoint>/v1/traces`, e.g. `http://collector:4318`). Off when unset.
    /// Batched off the request path: a slow or absent collector loses spans,
    /// never requests (docs/operations.md, "Traces").
    #[arg(long, env = "VENEER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// The `service.name` the exported spans carry.
    #[arg(long, env = "VENEER_OTLP_SERVICE_NAME", default_value = "veneer")]
    pub otlp_service_name: String,

    /// Share of traces started here that are exported (0 to 1); a request
    /// carrying a W3C `traceparent` follows its caller's sampling decision.
    #[arg(long, env = "VENEER_OTLP_SAMPLE_RATIO", default_value_t = 1.0, value_parser = ratio)]
    pub otlp_sample_ratio: f64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_service_name: "veneer".to_owned(),
            otlp_sample_ratio: 1.0,
        }
    }
}

impl OtlpConfig {
    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        self.otlp_endpoint.is_some()
    }

    /// The URL spans are posted to: the endpoint with `/v1/traces` appended
    /// (unless it is there already). An error says which setting to fix.
    pub fn traces_url(&self) -> Result<Option<String>, String> {
        let Some(endpoint) = &self.otlp_endpoint else {
            return Ok(None);
        };
        let base = endpoint.trim_end_matches('/');
        let url = reqwest::Url::parse(base).map_err(|err| {
            format!("--otlp-endpoint `{endpoint}` is not a URL ({err}); give the collector's http:// or https:// address, e.g. http://collector:4318")
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "--otlp-endpoint `{endpoint}` is not an http:// or https:// address of a collector"
            ));
        }
        Ok(Some(if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        }))
    }
}

fn ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("`{text}` is not a ratio between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(endpoint: &str) -> OtlpConfig {
        OtlpConfig {
            otlp_endpoint: Some(endpoint.to_owned()),
            ..OtlpConfig::default()
        }
    }

    #[test]
    fn the_traces_path_is_appended_once() {
        assert_eq!(OtlpConfig::default().traces_url(), Ok(None));
        for (given, url) in [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            (
                "https://otel.example/v1/traces",
                "https://otel.example/v1/traces",
            ),
            (
                "http://10.0.0.1:4318/otlp",
                "http://10.0.0.1:4318/otlp/v1/traces",
            ),
        ] {
            assert_eq!(
                with(given).traces_url(),
                Ok(Some(url.to_owned())),
                "{given}"
            );
        }
    }

    #[test]
    fn an_endpoint_that_is_no_http_url_is_refused_with_the_flag_named() {
        for given in [
            "collector:4318",
            "grpc://collector:4317",
            "not a url",
            "http://",
        ] {
            let err = with(given).traces_url().expect_err(given);
            assert!(err.contains("--otlp-endpoint"), "{given}: {err}");
        }
    }

    #[test]
    fn the_ratio_is_between_zero_and_one() {
        assert_eq!(ratio("0"), Ok(0.0));
        assert_eq!(ratio("0.25"), Ok(0.25));
        assert_eq!(ratio("1"), Ok(1.0));
        for bad in ["-0.1", "1.5", "NaN", "half"] {
            assert!(ratio(bad).is_err(), "{bad}");
        }
    }
}
