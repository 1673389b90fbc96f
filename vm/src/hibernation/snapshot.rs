//! A hibernated process's saved memory ([`Snapshot`]): taken against the
//! module's [`InitialMemory`], put back into a fresh instance's memory.

use super::{InitialMemory, PAGE};

/// Saved pages are stored as the 64-byte chunks that changed (most do not).
const CHUNK: usize = PAGE / 64;
static ZERO: [u8; PAGE] = [0; PAGE];

/// A hibernated process's memory: the pages that differ from the module's
/// initial memory, XORed with it (so mostly zeros), without their all-zero 64-byte
/// chunks, LZ4-compressed.
pub(crate) struct Snapshot {
    /// The memory's size, bytes.
    size: usize,
    /// LZ4 of: the number of pages (`u32` LE), then for each page its index
    /// (`u32` LE), a bitmap of its non-zero chunks (`u64` LE) and those
    /// chunks. (Long zero runs are left out before LZ4 because LZ4's safe
    /// decoder copies them byte by byte.)
    packed: Box<[u8]>,
}

impl Snapshot {
    /// Saves `memory` (the whole linear memory) against `initial`.
    pub(crate) fn take(memory: &[u8], initial: &InitialMemory) -> Snapshot {
        let mut raw = vec![0; 4];
        let mut pages = 0u32;
        let mut delta = [0u8; PAGE];
        let start = initial.keep_from.min(memory.len());
        for (i, page) in memory[start..].chunks(PAGE).enumerate() {
            let at = i * PAGE;
            let init = initial.initial.get(at..).unwrap_or(&[]);
            let init = &init[..init.len().min(page.len())];
            let (same, rest) = page.split_at(init.len());
            if same == init && rest == &ZERO[..rest.len()] {
                continue;
            }
            pages += 1;
            let delta = &mut delta[..page.len()];
            delta.copy_from_slice(page);
            for (now, was) in delta.iter_mut().zip(init) {
                *now ^= was;
            }
            // The page's index, a bitmap of its non-zero chunks, the chunks.
            raw.extend_from_slice(&(((start + at) / PAGE) as u32).to_le_bytes());
            let mask_at = raw.len();
            raw.extend_from_slice(&0u64.to_le_bytes());
            let mut mask = 0u64;
            for (c, chunk) in delta.chunks(CHUNK).enumerate() {
                if chunk != &ZERO[..chunk.len()] {
                    mask |= 1 << c;
                    raw.extend_from_slice(chunk);
                }
            }
            raw[mask_at..mask_at + 8].copy_from_slice(&mask.to_le_bytes());
        }
        raw[..4].copy_from_slice(&pages.to_le_bytes());
        Snapshot {
            size: memory.len(),
            packed: lz4_flex::compress_prepend_size(&raw).into_boxed_slice(),
        }
    }

    /// The memory size to grow a fresh instance's memory to, bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Bytes held while hibernated.
    pub(crate) fn packed_len(&self) -> usize {
        self.packed.len()
    }

    /// Puts the saved pages back into `memory`, a fresh instance's memory
    /// already grown to [`Snapshot::size`].
    pub(crate) fn restore(&self, memory: &mut [u8]) -> Result<(), String> {
        const BAD: &str = "the saved memory is malformed";
        let raw = lz4_flex::decompress_size_prepended(&self.packed)
            .map_err(|e| format!("the saved memory does not decompress: {e}"))?;
        let mut rest = &raw[..];
        let mut take = |n: usize| -> Result<&[u8], String> {
            let (head, tail) = rest.split_at_checked(n).ok_or(BAD)?;
            rest = tail;
            Ok(head)
        };
        let pages = u32::from_le_bytes(take(4)?.try_into().unwrap());
        for _ in 0..pages {
            let at = u32::from_le_bytes(take(4)?.try_into().unwrap()) as usize * PAGE;
            let mask = u64::from_le_bytes(take(8)?.try_into().unwrap());
            let page = memory
                .get_mut(at..at + PAGE)
                .ok_or("a saved page lies outside the memory")?;
            for (c, target) in page.chunks_mut(CHUNK).enumerate() {
                if mask & (1 << c) != 0 {
                    for (t, d) in target.iter_mut().zip(take(CHUNK)?) {
                        *t ^= d;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hibernation::layout::tests::{layout, STACK_FIRST};

    #[test]
    fn a_snapshot_restores_changed_pages_and_grown_memory_exactly() {
        let layout = layout(STACK_FIRST);
        let initial = layout.initial_memory().unwrap();
        // The memory as a fresh instance has it, then grown by one page and
        // changed in the data, in the grown part and in the (dead) stack.
        let fresh = |size: usize| {
            let mut m = vec![0u8; size];
            m[65536..65536 + 5].copy_from_slice(b"hello");
            m[70000..70005].copy_from_slice(b"world");
            m
        };
        let mut live = fresh(3 * 65536);
        live[70001] = b'W';
        live[150_000..150_004].copy_from_slice(b"heap");
        live[100] = 7; // the stack: not kept
        let snap = Snapshot::take(&live, initial);
        assert_eq!(snap.size(), 3 * 65536);
        assert!(
            snap.packed_len() < 200,
            "two XORed pages compress: {}",
            snap.packed_len()
        );

        let mut woken = fresh(snap.size());
        snap.restore(&mut woken).unwrap();
        live[100] = 0;
        assert!(woken == live, "the memory is back, the stack aside");
    }

    #[test]
    fn an_unchanged_memory_saves_no_page() {
        let layout = layout(STACK_FIRST);
        let initial = layout.initial_memory().unwrap();
        let mut m = vec![0u8; 2 * 65536];
        m[65536..65536 + 5].copy_from_slice(b"hello");
        m[70000..70005].copy_from_slice(b"world");
        let snap = Snapshot::take(&m, initial);
        let raw = lz4_flex::decompress_size_prepended(&snap.packed).unwrap();
        assert_eq!(raw, 0u32.to_le_bytes());
        let mut m2 = m.clone();
        snap.restore(&mut m2).unwrap();
        assert!(m2 == m);
    }
}
