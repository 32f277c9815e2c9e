//! Page sizes and page tokens for list calls (AIP-158).
//!
//! Lists are keyset-paginated: a token carries the key of the last item of
//! the page, so pages stay stable while jobs are pushed or change state. The
//! token also carries the list's filter, because continuing a listing with a
//! different filter would silently skip or repeat items.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    Error, Result,
    limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE},
};

/// A validated request for one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// How many items at most.
    pub size: u32,
    /// Start after this key; `None` for the first page.
    pub after: Option<String>,
    filter: String,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The token of the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

impl PageRequest {
    /// Validates `page_size` and decodes `page_token` for a list whose
    /// filter is described by `filter` (any string that changes with it).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `page_size` when it is negative or
    /// above the maximum, or `page_token` when it is not a token of this list
    /// and filter.
    pub fn parse(page_size: i32, page_token: &str, filter: String) -> Result<Self> {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n > 0 && n as u32 <= MAX_PAGE_SIZE => n as u32,
            n => {
                return Err(Error::invalid(
                    "page_size",
                    format!("must be between 1 and {MAX_PAGE_SIZE} (or 0 for {DEFAULT_PAGE_SIZE}), got {n}"),
                ));
            }
        };
        let after = match page_token {
            "" => None,
            token => Some(decode(token, &filter)?),
        };
        Ok(PageRequest { size, after, filter })
    }

    /// Builds the page from up to `size + 1` items fetched after the cursor:
    /// the extra item only tells that a next page exists.
    pub fn page<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String) -> Page<T> {
        let next_page_token = if items.len() > self.size as usize {
            items.truncate(self.size as usize);
            items.last().map(|last| encode(&self.filter, &key(last)))
        } else {
            None
        };
        Page { items, next_page_token }
    }

    /// How many rows to fetch: one more than the page holds.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.size) + 1
    }
}

fn encode(filter: &str, after: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{filter}\n{after}"))
}

fn decode(token: &str, filter: &str) -> Result<String> {
    let invalid = || Error::invalid("page_token", "is not a token returned by this list with the same filter");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    match text.split_once('\n') {
        Some((f, after)) if f == filter && !after.is_empty() => Ok(after.to_owned()),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_chain_through_tokens() {
        let first = PageRequest::parse(2, "", "f".into()).unwrap();
        let page = first.page(vec!["a", "b", "c"], |s| s.to_string());
        assert_eq!(page.items, vec!["a", "b"]);
        let token = page.next_page_token.unwrap();
        let second = PageRequest::parse(2, &token, "f".into()).unwrap();
        assert_eq!(second.after.as_deref(), Some("b"));
        let last = second.page(vec!["c"], |s| s.to_string());
        assert_eq!(last.next_page_token, None);
    }

    #[test]
    fn a_token_is_bound_to_its_filter() {
        let page = PageRequest::parse(1, "", "dead".into()).unwrap().page(vec![1, 2], |n| n.to_string());
        let token = page.next_page_token.unwrap();
        assert!(PageRequest::parse(1, &token, "pending".into()).is_err());
        assert!(PageRequest::parse(1, "garbage!", "dead".into()).is_err());
    }

    #[test]
    fn page_size_bounds() {
        assert_eq!(PageRequest::parse(0, "", String::new()).unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(PageRequest::parse(1000, "", String::new()).unwrap().size, 1000);
        for bad in [-1, 1001] {
            let err = PageRequest::parse(bad, "", String::new()).unwrap_err();
            assert!(err.to_string().starts_with("page_size: "));
        }
    }
}
