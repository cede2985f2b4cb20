//! "Did you mean": the closest known name to a misspelt one, if any is close enough.

/// The candidate closest to `input`, if it is plausibly what was meant.
pub fn did_you_mean<'a>(input: &str, candidates: &'a [String]) -> Option<&'a str> {
    let input_lower = input.to_lowercase();
    candidates
        .iter()
        .filter(|c| c.as_str() != input)
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
}
