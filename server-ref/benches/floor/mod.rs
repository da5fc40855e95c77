//! The kernel's floor for one fan-out on loopback: the same number of TCP connections as the
//! propagation bench, each sent one message of the same size per round, with no WebSocket,
//! JSON, server or database in the way — two threads writing (blocking `send`, as many
//! sockets each) and two threads reading (edge-triggered epoll through `mio`), the shape of
//! the server's two workers and the bench's two. What the propagation bench measures above
//! this floor is ours; the floor itself is what this machine's kernel charges per loopback
//! segment (both TCP ends run on the same cores).

use std::{
    io::{ErrorKind, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc, Barrier,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use mio::{Events, Interest, Poll, Token};

/// Writing and reading threads each (the server's and the bench's runtime workers).
const THREADS: usize = 2;

/// Milliseconds from each round's start to each connection reading its whole message:
/// `rounds × connections` sightings. Each round starts `gap` after the last one ended, as
/// the propagation bench's `PUT`s do.
pub fn measure(connections: usize, bytes: usize, rounds: usize, gap: Duration) -> Vec<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the floor's listener");
    let addr = listener.local_addr().unwrap();
    let mut senders: Vec<Vec<TcpStream>> = (0..THREADS).map(|_| Vec::new()).collect();
    let mut receivers: Vec<Vec<TcpStream>> = (0..THREADS).map(|_| Vec::new()).collect();
    for i in 0..connections {
        let client = TcpStream::connect(addr).expect("connect on loopback");
        let (server, _) = listener.accept().unwrap();
        server.set_nodelay(true).unwrap();
        client.set_nodelay(true).unwrap();
        client.set_nonblocking(true).unwrap();
        senders[i % THREADS].push(server);
        receivers[i % THREADS].push(client);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (arrived, arrivals) = mpsc::channel::<Vec<Instant>>();
    let readers: Vec<_> = receivers
        .into_iter()
        .map(|group| {
            let (stop, arrived) = (stop.clone(), arrived.clone());
            thread::spawn(move || read_rounds(group, bytes, &stop, &arrived))
        })
        .collect();
    let start = Arc::new(Barrier::new(THREADS + 1));
    let done = Arc::new(Barrier::new(THREADS + 1));
    let writers: Vec<_> = senders
        .into_iter()
        .map(|mut group| {
            let (start, done) = (start.clone(), done.clone());
            thread::spawn(move || {
                let message = vec![b'x'; bytes];
                for _ in 0..rounds {
                    start.wait();
                    for socket in &mut group {
                        socket.write_all(&message).expect("send on loopback");
                    }
                    done.wait();
                }
            })
        })
        .collect();
    let mut ms = Vec::with_capacity(rounds * connections);
    for _ in 0..rounds {
        thread::sleep(gap);
        let sent = Instant::now();
        start.wait();
        done.wait();
        for _ in 0..THREADS {
            let times = arrivals.recv_timeout(Duration::from_secs(30)).expect("floor round");
            ms.extend(
                times
                    .iter()
                    .map(|t| t.saturating_duration_since(sent).as_secs_f64() * 1e3),
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for handle in writers.into_iter().chain(readers) {
        handle.join().unwrap();
    }
    ms
}

/// One reading thread: sends the arrival times of a round once all its connections read it.
fn read_rounds(group: Vec<TcpStream>, bytes: usize, stop: &AtomicBool, arrived: &mpsc::Sender<Vec<Instant>>) {
    let mut poll = Poll::new().unwrap();
    let mut sockets: Vec<mio::net::TcpStream> = group.into_iter().map(mio::net::TcpStream::from_std).collect();
    for (i, socket) in sockets.iter_mut().enumerate() {
        poll.registry().register(socket, Token(i), Interest::READABLE).unwrap();
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 8 * 1024];
    let mut pending = vec![0usize; sockets.len()];
    let mut times = Vec::with_capacity(sockets.len());
    while !stop.load(Ordering::Relaxed) {
        poll.poll(&mut events, Some(Duration::from_millis(50))).unwrap();
        for event in &events {
            let i = event.token().0;
            loop {
                match sockets[i].read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        pending[i] += n;
                        while pending[i] >= bytes {
                            pending[i] -= bytes;
                            times.push(Instant::now());
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("floor read: {e}"),
                }
            }
        }
        if times.len() >= sockets.len() {
            let _ = arrived.send(std::mem::replace(&mut times, Vec::with_capacity(sockets.len())));
        }
    }
}
