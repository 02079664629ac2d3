//! The Lua script (`script.lua`) and how it is called: one [`ScriptCall`] per operation, its
//! arguments encoded as plain text, and the [`ScriptReply`] every operation returns.

/// The Lua source of every shared operation (reserve, adjust, observe, block, known).
pub(crate) const SCRIPT_SOURCE: &str = include_str!("script.lua");

/// One invocation of the script.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ScriptCall {
    /// `KEYS`: the scope's eight keys.
    pub keys: Vec<String>,
    /// `ARGV`: the operation, then its arguments.
    pub args: Vec<String>,
}

/// The script's answer: `{status, wait µs, bucket, flag, now µs, stored}`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ScriptReply {
    /// `granted`, `too_far`, `probe`, `known` or `ok`.
    pub status: String,
    /// A wait in microseconds of Redis's clock.
    pub wait_us: i64,
    /// The binding bucket's code (see [`super::scope::bucket_code`]).
    pub bucket: i64,
    /// Operation-specific: 1 when a reservation touched Redis state, or when limits are known.
    pub flag: i64,
    /// Redis's `TIME` when the script ran, in microseconds since the epoch.
    pub now_us: i64,
    /// A reservation's view of the shared buckets: per dimension, the stored limit and
    /// capacity as Redis holds them (`""` when unknown). Empty for the other operations.
    pub stored: Vec<String>,
}

impl ScriptReply {
    /// What the shared state holds per dimension, as `(limit, learned capacity)` (`None` for
    /// a dimension whose limit it does not know; a capacity equal to the limit is no learned
    /// capacity).
    pub fn stored_limits(&self) -> [Option<(u64, Option<f64>)>; 3] {
        std::array::from_fn(|i| {
            let limit = self.stored.get(2 * i)?.parse::<f64>().ok()?;
            if !(limit.is_finite() && limit >= 1.0) {
                return None;
            }
            let capacity = self
                .stored
                .get(2 * i + 1)
                .and_then(|c| c.parse::<f64>().ok())
                .filter(|c| c.is_finite() && *c < limit);
            Some((limit as u64, capacity))
        })
    }
}

/// A number for the script: finite, plain decimal (Lua's `tonumber` reads it).
pub(crate) fn num_arg(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "0".to_string()
    }
}

/// A flag for the script: `1` or `0`.
pub(crate) fn flag_arg(on: bool) -> String {
    if on { "1" } else { "0" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_reach_lua_as_plain_decimals() {
        assert_eq!(num_arg(1e21), "1000000000000000000000");
        assert_eq!(num_arg(0.5), "0.5");
        assert_eq!(num_arg(f64::NAN), "0");
        assert_eq!(num_arg(f64::INFINITY), "0");
    }

    #[test]
    fn stored_limits_are_read_back() {
        let reply = ScriptReply {
            status: "granted".into(),
            wait_us: 0,
            bucket: 0,
            flag: 1,
            now_us: 0,
            stored: ["120", "1.4", "30000", "30000", "", ""]
                .map(String::from)
                .to_vec(),
        };
        assert_eq!(
            reply.stored_limits(),
            [Some((120, Some(1.4))), Some((30_000, None)), None]
        );
        let empty = ScriptReply {
            stored: Vec::new(),
            ..reply
        };
        assert_eq!(empty.stored_limits(), [None, None, None]);
    }
}
