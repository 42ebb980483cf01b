//! `ferric-bench compare`: each figure of a baseline report next to the same
//! figure (same key) of other reports, with how many times better each is.
//! A ratio above 1 means better than the baseline whichever way the headline
//! points (more requests/s, fewer seconds, less memory).

use std::fmt::Write as _;

use crate::report::Report;

/// How many times better `other` is than `base`; `None` when either is
/// missing or zero.
fn ratio(base: (f64, bool), other: (f64, bool)) -> Option<f64> {
    let (b, higher_is_better) = base;
    let (o, _) = other;
    if b <= 0.0 || o <= 0.0 {
        return None;
    }
    Some(if higher_is_better { o / b } else { b / o })
}

/// The comparison table.
pub fn table(base: &Report, others: &[Report]) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:<66} {:>16}", "what", base.label);
    for other in others {
        let _ = write!(out, " {:>28}", other.label);
    }
    out.push('\n');
    for figure in &base.figures {
        let _ = write!(out, "{:<66} {:>16}", figure.what, figure.headline_text());
        for other in others {
            let cell = match other.figures.iter().find(|f| f.key == figure.key) {
                None => "-".to_owned(),
                Some(theirs) => {
                    let times = figure
                        .headline_value()
                        .zip(theirs.headline_value())
                        .and_then(|(b, o)| ratio(b, o));
                    match times {
                        Some(times) => format!("{} ({times:.1}×)", theirs.headline_text()),
                        None => theirs.headline_text(),
                    }
                }
            };
            let _ = write!(out, " {cell:>28}");
        }
        out.push('\n');
    }
    for other in others {
        for figure in &other.figures {
            if !base.figures.iter().any(|f| f.key == figure.key) {
                let _ = writeln!(
                    out,
                    "{:<66} {:>16} {}: {}",
                    figure.what,
                    "-",
                    other.label,
                    figure.headline_text()
                );
            }
        }
    }
    out.push_str(
        "(N×) = N times better than the baseline: faster, more per second, or less memory\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_points_the_right_way() {
        assert_eq!(ratio((100.0, true), (5000.0, true)), Some(50.0));
        assert_eq!(ratio((30.0, false), (1.0, false)), Some(30.0));
        assert_eq!(ratio((0.0, false), (1.0, false)), None);
    }
}
