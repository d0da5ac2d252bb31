//! The KV cache's slots: which are running a sequence, and which tokens a free slot still
//! holds, so that a prompt extending them (a chat's next turn) reuses their keys and values.

/// Busy flags and the cached tokens of every slot.
#[derive(Debug)]
pub struct Slots {
    busy: Vec<bool>,
    /// Tokens whose keys and values a free slot holds, from position 0.
    cached: Vec<Vec<u32>>,
}

/// A slot handed to a new sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The slot.
    pub slot: usize,
    /// Leading prompt tokens already in the slot's cache.
    pub reused: usize,
}

impl Slots {
    /// `n` free, empty slots.
    pub fn new(n: usize) -> Self {
        Self { busy: vec![false; n], cached: vec![Vec::new(); n] }
    }

    /// Whether a slot is free.
    pub fn has_free(&self) -> bool {
        self.busy.contains(&false)
    }

    /// Takes the free slot whose cached tokens share the longest prefix with `prompt` (among
    /// equals, the one caching least, so longer caches survive for later turns). At least one
    /// prompt token is left to run, so the step has logits to continue from.
    pub fn claim(&mut self, prompt: &[u32]) -> Option<Claim> {
        let (slot, common) = (0..self.busy.len())
            .filter(|&s| !self.busy[s])
            .map(|s| (s, common_prefix(&self.cached[s], prompt)))
            .max_by(|(a, ca), (b, cb)| ca.cmp(cb).then(self.cached[*b].len().cmp(&self.cached[*a].len())))?;
        self.busy[slot] = true;
        self.cached[slot].clear();
        Some(Claim { slot, reused: common.min(prompt.len().saturating_sub(1)) })
    }

    /// Frees `slot`, whose cache now holds `cached` (from position 0).
    pub fn release(&mut self, slot: usize, cached: &[u32]) {
        self.busy[slot] = false;
        self.cached[slot] = cached.to_vec();
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_goes_to_the_slot_sharing_its_longest_prefix() {
        let mut slots = Slots::new(3);
        let a = slots.claim(&[1, 2, 3]).unwrap();
        let b = slots.claim(&[7, 8]).unwrap();
        assert_eq!((a.reused, b.reused), (0, 0));
        assert_ne!(a.slot, b.slot);
        slots.release(a.slot, &[1, 2, 3, 4]);
        slots.release(b.slot, &[7, 8, 9]);
        // The next turn of a's conversation finds a's slot.
        assert_eq!(slots.claim(&[1, 2, 3, 4, 5, 6]), Some(Claim { slot: a.slot, reused: 4 }));
        // An unrelated prompt takes the empty slot, keeping b's cache.
        let c = slots.claim(&[5]).unwrap();
        assert_ne!(c.slot, b.slot);
        assert_eq!(c.reused, 0);
        // An identical prompt still leaves its last token to run.
        assert_eq!(slots.claim(&[7, 8]), Some(Claim { slot: b.slot, reused: 1 }));
        assert!(!slots.has_free());
        assert_eq!(slots.claim(&[1]), None);
    }
}
