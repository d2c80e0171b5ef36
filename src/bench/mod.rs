//! `incident-bot bench …`: benchmarks that print their figures. Targets live here, not in timed unit tests.

pub mod alerts;
pub mod deploys;
pub mod digest;
pub mod resources;
pub mod warroom;

/// The p-th percentile (0–100) of sorted samples, in the samples' unit.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Sorts samples for [`percentile`].
pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let s = sorted((1..=100).map(f64::from).rev().collect());
        assert_eq!(percentile(&s, 50.0), 51.0);
        assert_eq!(percentile(&s, 99.0), 99.0);
        assert_eq!(percentile(&s, 100.0), 100.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
