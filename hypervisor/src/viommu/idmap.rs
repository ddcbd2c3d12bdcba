//! [`IdMap`]: the domains of a device by ID, for the model and the
//! backend alike. Entries are kept sorted in one vector and the entry the
//! last mutable lookup found is remembered, so the lookup every MAP and
//! UNMAP repeats (usually the domain of the request before) is one
//! comparison; any other a binary search. Inserting or removing a domain
//! (ATTACH, DETACH) moves at most the entries after it: a guest holds at
//! most `config::limits::MAX_VIOMMU_DOMAINS` of them.

use alloc::vec::Vec;

/// A map from 32-bit IDs to `V`, in ID order (see the module
/// documentation).
pub struct IdMap<V> {
    entries: Vec<(u32, V)>,
    /// Index of the entry the last [`IdMap::get_mut`] found (may be stale:
    /// always checked against the ID).
    last: usize,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> IdMap<V> {
    /// An empty map (nothing allocated).
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
            last: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index of `id`'s entry: the remembered one (inlined where a
    /// request looks its domain up), else a search.
    #[inline(always)]
    fn find(&self, id: u32) -> Result<usize, usize> {
        match self.entries.get(self.last) {
            Some((k, _)) if *k == id => Ok(self.last),
            _ => self.search(id),
        }
    }

    /// The binary search behind [`IdMap::find`].
    #[inline(never)]
    fn search(&self, id: u32) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&id, |(k, _)| *k)
    }

    /// The value of `id`.
    #[inline]
    pub fn get(&self, id: u32) -> Option<&V> {
        let i = self.find(id).ok()?;
        self.entries.get(i).map(|(_, v)| v)
    }

    /// The value of `id`, mutably; remembers where it was.
    #[inline(always)]
    pub fn get_mut(&mut self, id: u32) -> Option<&mut V> {
        let last = self.last;
        if self.entries.get(last).is_some_and(|(k, _)| *k == id) {
            // The remembered entry (nothing to remember anew): its bounds
            // check is the one just made, on this path alone.
            return self.entries.get_mut(last).map(|(_, v)| v);
        }
        self.get_mut_searched(id)
    }

    /// [`IdMap::get_mut`] past the remembered entry: a search, and the
    /// entry found remembered.
    #[inline(never)]
    fn get_mut_searched(&mut self, id: u32) -> Option<&mut V> {
        let i = self.search(id).ok()?;
        self.last = i;
        self.entries.get_mut(i).map(|(_, v)| v)
    }

    /// Whether `id` has an entry.
    pub fn contains_key(&self, id: u32) -> bool {
        self.find(id).is_ok()
    }

    /// Sets `id`'s value; returns the one it replaces.
    pub fn insert(&mut self, id: u32, value: V) -> Option<V> {
        match self.find(id) {
            Ok(i) => self
                .entries
                .get_mut(i)
                .map(|(_, v)| core::mem::replace(v, value)),
            Err(i) => {
                self.entries.insert(i, (id, value));
                self.last = i;
                None
            }
        }
    }

    /// Removes `id`'s entry; returns its value.
    pub fn remove(&mut self, id: u32) -> Option<V> {
        let i = self.find(id).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Removes every entry, yielding the values by ascending ID (the
    /// entries not yet yielded go when the iterator is dropped).
    pub fn drain_values(&mut self) -> impl Iterator<Item = V> + '_ {
        self.last = 0;
        self.entries.drain(..).map(|(_, v)| v)
    }

    /// The IDs, ascending.
    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().map(|(k, _)| *k)
    }

    /// The values, by ascending ID.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The entries, by ascending ID.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &V)> + '_ {
        self.entries.iter().map(|(k, v)| (*k, v))
    }
}
