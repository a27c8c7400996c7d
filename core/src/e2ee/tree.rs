//! The shape of a group's ratchet tree, read for what a commit costs (docs/E2EE.md, "Trees
//! that stay cheap"). A commit with an update path encrypts one path secret to every node of
//! the resolution of each node on the committer's copath: a blank node resolves to the
//! non-blank nodes below it, so a tree of blanks makes every commit seal to every leaf,
//! while a tree whose paths are filled costs O(log n). The positions follow the array
//! layout of RFC 9420, appendix C (leaf *i* at node 2*i*; a parent's level is its number of
//! trailing one bits); the tree is always a power of two leaves wide.

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;
use openmls::treesync::TreeSync;

/// What a commit with an update path costs the device at one leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathCost {
    /// The leaf's index.
    pub leaf: u32,
    /// Blank parent nodes on the leaf's direct path: what its own update path would fill.
    pub blanks: u32,
    /// The HPKE encryptions its update path takes: the sizes of its copath's resolutions.
    pub encryptions: u32,
}

/// Every non-blank leaf's [`PathCost`], in leaf order. O(nodes), once per epoch at most.
pub fn costs(tree: &TreeSync) -> Vec<PathCost> {
    let shape = Shape::of(tree, true);
    shape
        .leaves
        .iter()
        .enumerate()
        .filter(|(_, full)| **full)
        .map(|(i, _)| shape.cost(i))
        .collect()
}

/// The blank nodes leaf `leaf`'s own update path would fill: O(nodes), reading no node's
/// encoding.
pub fn blanks_above(tree: &TreeSync, leaf: u32) -> u32 {
    Shape::of(tree, false).cost(leaf as usize).blanks
}

/// Which nodes are filled, and each node's resolution size.
struct Shape {
    leaves: Vec<bool>,
    root: usize,
    filled: Vec<bool>,
    resolution: Vec<u32>,
}

impl Shape {
    /// With `unmerged`, a filled parent's resolution counts its unmerged leaves (read from
    /// its encoding); without, it counts 1, which is enough to tell empty from not.
    fn of(tree: &TreeSync, unmerged: bool) -> Shape {
        let leaves: Vec<bool> = tree.leaves().iter().map(Option::is_some).collect();
        let width = leaves.len().max(1).next_power_of_two();
        let nodes = 2 * width - 1;
        let mut filled = vec![false; nodes];
        let mut resolution = vec![0u32; nodes];
        for (i, full) in leaves.iter().enumerate() {
            filled[2 * i] = *full;
            resolution[2 * i] = u32::from(*full);
        }
        for (index, parent) in tree.full_parents() {
            let at = 2 * index.u32() as usize + 1;
            if at < nodes {
                filled[at] = true;
                resolution[at] = 1 + if unmerged { unmerged_leaves(parent) } else { 0 };
            }
        }
        // A blank parent resolves to its children's resolutions, level by level upwards.
        for level in 1..=width.trailing_zeros() {
            let half = 1usize << (level - 1);
            let mut at = (1usize << level) - 1;
            while at < nodes {
                if !filled[at] {
                    resolution[at] = resolution[at - half] + resolution[at + half];
                }
                at += 1 << (level + 1);
            }
        }
        Shape {
            leaves,
            root: width - 1,
            filled,
            resolution,
        }
    }

    /// Leaf `leaf`'s path: its filtered direct path (RFC 9420, section 4.1.2) leaves out a
    /// parent whose copath child resolves to nothing, which no update path fills.
    fn cost(&self, leaf: usize) -> PathCost {
        let (mut blanks, mut encryptions) = (0, 0);
        let mut node = 2 * leaf;
        while node != self.root && node < self.filled.len() {
            let (parent, sibling) = parent_and_sibling(node);
            let copath = self.resolution[sibling];
            encryptions += copath;
            blanks += u32::from(!self.filled[parent] && copath > 0);
            node = parent;
        }
        PathCost {
            leaf: leaf as u32,
            blanks,
            encryptions,
        }
    }
}

/// The parent of node `x` and `x`'s sibling (RFC 9420, appendix C).
fn parent_and_sibling(x: usize) -> (usize, usize) {
    let k = x.trailing_ones();
    let b = (x >> (k + 1)) & 1;
    let parent = (x | (1 << k)) ^ (b << (k + 1));
    let sibling = if x < parent {
        parent + (1 << k)
    } else {
        parent - (1 << k)
    };
    (parent, sibling)
}

/// How many unmerged leaves a parent node lists: the last field of its encoding
/// (`uint32 unmerged_leaves<V>`, RFC 9420, section 7.1), which openmls keeps to itself.
fn unmerged_leaves(parent: &ParentNode) -> u32 {
    let Ok(bytes) = parent.tls_serialize_detached() else {
        return 0;
    };
    let mut rest = bytes.as_slice();
    // encryption_key<V>, parent_hash<V>, then the leaves.
    for _ in 0..2 {
        let Some((len, after)) = varint(rest) else {
            return 0;
        };
        let Some(after) = after.get(len..) else {
            return 0;
        };
        rest = after;
    }
    varint(rest).map_or(0, |(len, _)| (len / 4) as u32)
}

/// A variable-length vector's length prefix (RFC 9000's varint, as RFC 9420 uses it).
fn varint(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let first = *bytes.first()?;
    let size = 1usize << (first >> 6);
    let prefix = bytes.get(..size)?;
    let mut value = usize::from(first & 0x3f);
    for b in &prefix[1..] {
        value = (value << 8) | usize::from(*b);
    }
    Some((value, &bytes[size..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_and_siblings_follow_the_rfc_layout() {
        // Four leaves: 0 1 2 3 4 5 6, root 3.
        assert_eq!(parent_and_sibling(0), (1, 2));
        assert_eq!(parent_and_sibling(2), (1, 0));
        assert_eq!(parent_and_sibling(4), (5, 6));
        assert_eq!(parent_and_sibling(1), (3, 5));
        assert_eq!(parent_and_sibling(5), (3, 1));
        // Eight leaves: root 7.
        assert_eq!(parent_and_sibling(3), (7, 11));
        assert_eq!(parent_and_sibling(11), (7, 3));
        assert_eq!(parent_and_sibling(12), (13, 14));
    }

    #[test]
    fn varints_read_their_length() {
        assert_eq!(varint(&[0x05, 9]), Some((5, &[9u8][..])));
        assert_eq!(varint(&[0x40, 0x80]), Some((0x80, &[][..])));
        assert_eq!(varint(&[0x40]), None);
        assert_eq!(varint(&[]), None);
    }
}
