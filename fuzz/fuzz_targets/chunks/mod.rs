//! Cutting a fuzz input into a body and the chunks it arrives in, for the
//! SSE parser and provider targets.
//!
//! Layout: byte 0 gives the number `n = b % 8 + 1` of chunk-size bytes that
//! follow; each is a chunk size `b + 1`, 255 meaning "the rest"; then the
//! body, cut in chunks of those sizes, cycled. (The codec targets' layout in
//! `common`, without its frame-limit byte.)

/// A body and the sizes of its chunks.
pub struct Split<'a> {
    sizes: Vec<usize>,
    pub body: &'a [u8],
}

impl<'a> Split<'a> {
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (&count, rest) = data.split_first()?;
        let count = usize::from(count % 8) + 1;
        if rest.len() < count {
            return None;
        }
        let (sizes, body) = rest.split_at(count);
        Some(Self {
            sizes: sizes
                .iter()
                .map(|&s| {
                    if s == 255 {
                        usize::MAX
                    } else {
                        usize::from(s) + 1
                    }
                })
                .collect(),
            body,
        })
    }

    /// The body in its chunks: none for an empty body, never an empty one.
    pub fn chunks(&self) -> Vec<&'a [u8]> {
        let mut chunks = Vec::new();
        let mut rest = self.body;
        let mut sizes = self.sizes.iter().cycle();
        while !rest.is_empty() {
            let size = (*sizes.next().expect("at least one size")).min(rest.len());
            let (chunk, tail) = rest.split_at(size);
            chunks.push(chunk);
            rest = tail;
        }
        chunks
    }
}
