//! Bind parameters as the planner sees them: raw values with their format
//! and type OID, borrowed from the client's Bind message.

/// The parameters of one execution.
#[derive(Debug, Clone, Default)]
pub struct Params<'a> {
    /// Values, `None` for NULL.
    pub values: Vec<Option<&'a [u8]>>,
    /// Binary format per value.
    pub binary: Vec<bool>,
    /// Type OID per value (0 when unspecified).
    pub types: Vec<u32>,
}

impl<'a> Params<'a> {
    /// No parameters (simple protocol).
    pub fn none() -> Params<'static> {
        Params::default()
    }

    /// Parameter `$n` (1-based): value, binary?, type OID.
    pub fn get(&self, n: usize) -> Option<(Option<&'a [u8]>, bool, u32)> {
        let i = n.checked_sub(1)?;
        let v = *self.values.get(i)?;
        Some((
            v,
            self.binary.get(i).copied().unwrap_or(false),
            self.types.get(i).copied().unwrap_or(0),
        ))
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Are there none?
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}
