//! The client's REST side, below the upload API: the HTTP base and the uploads waiting in
//! the store.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use super::pending::Pending;
use crate::error::{Failure, Result};
use crate::http::Http;

/// The client's REST side: how to reach the server over HTTP, and its pending uploads.
#[derive(Debug)]
pub struct Rest {
    http: std::result::Result<Http, Failure>,
    pub(super) pending: Pending,
    /// Uploads this page is sending now (`resumeUploads` leaves them alone).
    pub(super) active: RefCell<HashSet<String>>,
}

impl Rest {
    /// `http`: the REST base (or why there is none); `db_name`: the IndexedDB database of
    /// the client's store, `None` when it does not use IndexedDB.
    pub fn new(http: std::result::Result<Http, Failure>, db_name: Option<String>) -> Rc<Rest> {
        Rc::new(Rest {
            http,
            pending: Pending::new(db_name),
            active: RefCell::default(),
        })
    }

    pub fn http(&self) -> Result<&Http> {
        self.http.as_ref().map_err(Clone::clone)
    }

    pub fn close(&self) {
        self.pending.close();
    }
}
