//! What the native client's test modules share: a port that refuses connections and a
//! client that records what it reports through `on_error`.

use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
};

use meterline_core::{Client, Config, Error, runtime::native::Callbacks};

/// A port on which connections are refused.
pub fn refused_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A client whose `on_error` reports are collected in the returned list.
pub fn recording(config: Config) -> (Client, Arc<Mutex<Vec<Error>>>) {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    let callbacks = Callbacks {
        on_error: Some(Arc::new(move |e: &Error| sink.lock().unwrap().push(e.clone()))),
        ..Callbacks::default()
    };
    (Client::with_callbacks(config, callbacks).unwrap(), errors)
}
