//! "Did you mean": the closest known name to a misspelt one, if any is close enough.

use std::cell::Cell;

/// At most this many candidates are measured per suggestion.
const MAX_MEASURED: usize = 256;

/// At most this many candidates are measured in one check of a file, so that a file with
/// thousands of names and thousands of mistakes is still checked in linear time: the
/// first mistakes get suggestions, later ones (which nobody reads one by one) may not.
pub const CHECK_BUDGET: usize = 100_000;

thread_local! {
    static BUDGET: Cell<usize> = const { Cell::new(CHECK_BUDGET) };
}

/// Give this thread's next check a fresh measuring budget.
pub fn reset_budget() {
    BUDGET.with(|b| b.set(CHECK_BUDGET));
}

/// The candidate closest to `input`, if it is plausibly what was meant. Candidates whose
/// length alone rules them out are not measured; of many, those sharing the first letter
/// go first.
pub fn did_you_mean<'a>(input: &str, candidates: &'a [String]) -> Option<&'a str> {
    let left = BUDGET.with(Cell::get);
    if left == 0 {
        return None;
    }
    let input_lower = input.to_lowercase();
    // Byte lengths: a cheap bound, loose enough for any distance that could qualify.
    let length = input.len();
    let plausible = |c: &&String| {
        let other = c.len();
        c.as_str() != input && other.abs_diff(length) <= (length.max(other) / 2).max(4)
    };
    if let Some(same) = candidates
        .iter()
        .find(|c| c.as_str() != input && c.eq_ignore_ascii_case(input))
    {
        return Some(same);
    }
    let first = input_lower.as_bytes().first().copied();
    let mut measured: Vec<&String> = candidates.iter().filter(plausible).collect();
    if measured.len() > MAX_MEASURED {
        // The likeliest first (same first letter, closest length), in linear time.
        let key = |c: &&String| {
            (
                c.as_bytes().first().map(u8::to_ascii_lowercase) != first,
                c.len().abs_diff(length),
            )
        };
        measured.select_nth_unstable_by_key(MAX_MEASURED, key);
        measured.truncate(MAX_MEASURED);
    }
    let take = measured.len().min(left);
    BUDGET.with(|b| b.set(left - take));
    measured
        .into_iter()
        .take(take)
        .map(|c| {
            let distance = strsim::damerau_levenshtein(&input_lower, &c.to_lowercase());
            (distance, c)
        })
        .filter(|(distance, candidate)| {
            let longest = input.chars().count().max(candidate.chars().count());
            *distance <= (longest / 3).max(1)
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c.as_str())
}

/// Names for a hint: the first ten, then how many more.
pub fn some_of(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn close_names_are_suggested() {
        let keys = names(&["containerfile", "context", "build-args", "network"]);
        assert_eq!(did_you_mean("contanerfile", &keys), Some("containerfile"));
        assert_eq!(did_you_mean("netwrok", &keys), Some("network"));
        assert_eq!(did_you_mean("Context", &keys), Some("context"));
        assert_eq!(did_you_mean("zzz", &keys), None);
        assert_eq!(did_you_mean("", &keys), None);
    }

    #[test]
    fn many_candidates_still_find_the_close_one() {
        let many: Vec<String> = (0..20_000).map(|i| format!("image{i}")).collect();
        assert_eq!(did_you_mean("imag7", &many), Some("image7"));
        assert_eq!(did_you_mean("Image12345", &many), Some("image12345"));
    }
}
