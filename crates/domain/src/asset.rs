//! What a venue allows for one instrument. Pure data, so the planner's
//! broker-rules guard can predict a venue's refusals without talking to it.

use serde::{Deserialize, Serialize};

/// What a venue allows for one instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetFacts {
    /// Orders are accepted at all.
    pub tradable: bool,
    /// Fractional quantities are accepted.
    pub fractionable: bool,
    /// Short sales are accepted. Venues report `false` when the *account*
    /// may not short either (Alpaca's `shorting_enabled`), so one flag says
    /// whether a short sale in this symbol would be taken.
    pub shortable: bool,
}
