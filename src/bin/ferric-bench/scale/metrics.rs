//! Reading the Prometheus text Ferric serves: the sum of one family's
//! samples (optionally only those with a label value), enough to follow
//! power-sync sweeps and count broker messages from outside.

/// Sums the samples of `name` (exactly: `name` or `name{…}`) whose labels
/// contain `label` when given (`outcome="confirmed"`).
pub fn sum(text: &str, name: &str, label: Option<&str>) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = if let Some(labelled) = rest.strip_prefix('{') {
                let (labels, value) = labelled.split_once('}')?;
                (labels, value)
            } else if rest.starts_with(' ') {
                ("", rest)
            } else {
                return None;
            };
            if label.is_some_and(|l| !labels.contains(l)) {
                return None;
            }
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// Fetches one `/metrics` page (empty when it cannot be read).
pub async fn scrape(http: &reqwest::Client, url: &str) -> String {
    match http.get(url).send().await {
        Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_summed_by_exact_name_and_label() {
        let text = "# HELP x\n\
            ferric_queue_publishes_total{outcome=\"confirmed\"} 7\n\
            ferric_queue_publishes_total{outcome=\"failed\"} 2\n\
            ferric_power_sync_last_sweep_seconds 1.5\n\
            ferric_power_sync_last_sweep_seconds_extra 9\n";
        assert_eq!(sum(text, "ferric_queue_publishes_total", None), 9.0);
        assert_eq!(
            sum(
                text,
                "ferric_queue_publishes_total",
                Some("outcome=\"confirmed\"")
            ),
            7.0
        );
        assert_eq!(sum(text, "ferric_power_sync_last_sweep_seconds", None), 1.5);
        assert_eq!(sum(text, "ferric_nothing", None), 0.0);
    }
}
