//! The kernel's floor under the big-room scenario: what one small write to a loopback TCP
//! socket costs the writing thread, and one read the reading thread, with nothing else on
//! the path (no websocket library, no queue, no task per socket on the writing side).
//!
//! A gateway delivers each frame to each member with one write. On loopback the receiving
//! side's TCP processing runs inside the sender's system call, so a gateway's CPU per
//! million deliveries cannot go below this floor there, however lean its own code is. The
//! reading side is measured the same way: it is the floor of the load generator's cost.
//!
//! `cargo run --release -p loadgen --example write_floor -- [sockets] [rounds_per_sec] [seconds] [frame_bytes]`
//!
//! The defaults (1000 sockets, 50 rounds a second, 10 s, 300-byte frames) are one gateway's
//! share of the big-room scenario: 50,000 writes a second.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .map_or(default, |s| s.parse().expect("arguments are whole numbers"))
}

/// CPU time of the calling thread alone: the writer's figure must not include the readers'.
#[allow(unsafe_code)]
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let sockets = arg(1, 1000) as usize;
    let rate = arg(2, 50);
    let seconds = arg(3, 10);
    let frame_bytes = arg(4, 300) as usize;
    let rounds = rate * seconds;
    let expected = rounds * sockets as u64 * frame_bytes as u64;

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let mut readers = Vec::with_capacity(sockets);
    let mut writers = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let reader = TcpStream::connect(address).expect("connect");
        let (writer, _) = listener.accept().expect("accept");
        // As the gateway and the load generator set them.
        reader.set_nodelay(true).expect("nodelay");
        writer.set_nodelay(true).expect("nodelay");
        reader.set_nonblocking(true).expect("nonblocking");
        readers.push(reader);
        writers.push(writer);
    }

    // The reading side: one thread, one task per socket, as a load generator reads.
    let received = Arc::new(AtomicU64::new(0));
    let reading = {
        let received = received.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let start = thread_cpu();
                let mut tasks = tokio::task::JoinSet::new();
                for reader in readers {
                    let received = received.clone();
                    tasks.spawn(async move {
                        let mut stream = tokio::net::TcpStream::from_std(reader).expect("register");
                        let mut buf = vec![0u8; 1024];
                        let mut reads = 0u64;
                        loop {
                            let n = stream.read(&mut buf).await.expect("read");
                            if n == 0 {
                                return reads;
                            }
                            reads += 1;
                            received.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    });
                }
                let mut reads = 0;
                while let Some(task) = tasks.join_next().await {
                    reads += task.expect("reader task");
                }
                (reads, thread_cpu() - start)
            })
        })
    };

    let frame = vec![b'x'; frame_bytes];
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let cpu_before = thread_cpu();
    for round in 0..rounds {
        let due = started + period * round as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for writer in &mut writers {
            writer.write_all(&frame).expect("write");
        }
    }
    let writer_cpu = thread_cpu() - cpu_before;
    let wall = started.elapsed();
    // Closing the writers ends every reader once it has read everything.
    drop(writers);
    let (reads, reader_cpu) = reading.join().expect("reading thread");
    assert_eq!(received.load(Ordering::Relaxed), expected, "every byte arrived");

    let writes = rounds * sockets as u64;
    let per_write = writer_cpu.as_secs_f64() / writes as f64 * 1e6;
    let per_read = reader_cpu.as_secs_f64() / reads as f64 * 1e6;
    println!(
        "{writes} writes of {frame_bytes} B to {sockets} loopback sockets over {:.1} s ({:.0} writes/s)",
        wall.as_secs_f64(),
        writes as f64 / wall.as_secs_f64()
    );
    println!(
        "writer: {:.2} CPU-s, {per_write:.2} µs per write = {per_write:.2} CPU-s per million",
        writer_cpu.as_secs_f64()
    );
    println!(
        "reader: {:.2} CPU-s over {reads} reads, {per_read:.2} µs per read",
        reader_cpu.as_secs_f64()
    );
}
