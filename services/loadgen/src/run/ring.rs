//! The receive-only clients, read through one io_uring on a thread of their own.
//!
//! Why: in the big room nearly every client only reads, one frame per read, and through
//! tokio each frame cost an `epoll_wait` share, a `recvfrom`, a task wake-up and a poll of
//! the client's `select!` with its stop signal. Here one multishot receive per socket stays
//! armed in the kernel, which copies what arrives into buffers from a ring shared with us
//! (`IORING_REGISTER_PBUF_RING`) and posts one completion per read; the thread takes the
//! completions in batches, feeds each client's [`Frames`] and hands the buffers back, with
//! no system call per delivery but the `TCP_QUICKACK` hint. Measured in
//! docs/benchmarks.md.
//!
//! Each client's ledger is the same [`Client`] the tokio path drives, so the accounting is
//! one code. A client that sends, reacts or types stays on tokio: its sends need timers.
#![allow(unsafe_code)] // the ring's submissions and its shared buffers; each use says why it holds

use super::Outcome;
use super::client::Client;
use crate::wire::{Frames, delayed_ack};
use io_uring::{IoUring, cqueue, opcode, squeue, types};
use std::alloc::Layout;
use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// One provided buffer: a delivery is a ~300-byte frame, and a longer read takes several.
const BUFFER_BYTES: usize = 2048;
/// The buffer group our receives take from.
const GROUP: u16 = 0;
/// The `user_data` of the cancellation at the end; a receive's is its client's index.
const CANCEL: u64 = u64::MAX;
/// The `user_data` of a `TCP_QUICKACK` hint given through the ring, whose completion
/// comes only when it failed.
const HINT: u64 = u64::MAX - 1;
/// `TCP_QUICKACK`'s value for the hint: off.
static QUICKACK_OFF: libc::c_int = 0;
/// How often the thread looks at the stop signal while nothing arrives.
const WAKE_EVERY: Duration = Duration::from_millis(10);
/// How long the end waits for the kernel to give up every receive.
const CANCEL_WAIT: Duration = Duration::from_secs(2);

/// A client whose socket the ring reads.
pub(super) struct Receiver {
    client: Client,
    socket: TcpStream,
    frames: Frames,
    /// A multishot receive is in the kernel for this socket.
    armed: bool,
    /// The connection ended (its cause is in the outcome); nothing more is read.
    ended: bool,
}

impl Receiver {
    /// Takes the socket away from tokio: a socket tokio still watched would wake its
    /// reactor for every delivery the ring reads.
    pub(super) fn new(client: Client, ws: crate::connect::Ws) -> io::Result<Self> {
        let (stream, frames) = ws.into_parts();
        // It sends nothing, so it is done sending from the start, as for the drain.
        client.progress.done_sending.store(true, Ordering::Release);
        Ok(Self {
            client,
            socket: stream.into_std()?,
            frames,
            armed: false,
            ended: false,
        })
    }

    fn end(&mut self, cause: String) {
        if !self.ended {
            self.ended = true;
            self.client.outcome.disconnect = Some(cause);
        }
    }

    /// Hands what was read to the client's ledger and answers pings.
    fn take(&mut self, bytes: &[u8]) {
        let taken = self
            .frames
            .push(bytes)
            .map_err(|e| format!("error: {e}"))
            .and_then(|()| self.client.take_frames(&mut self.frames));
        if let Err(cause) = taken {
            return self.end(cause);
        }
        if !self.frames.pongs().is_empty() {
            // A pong is a few bytes on a socket this client never writes otherwise: the
            // send buffer has room, and a socket without it is as good as gone.
            if let Err(e) = (&self.socket).write_all(self.frames.pongs()) {
                return self.end(format!("error: pong: {e}"));
            }
            self.frames.pongs_sent();
        }
    }
}

/// The ring's buffers: `count` of [`BUFFER_BYTES`] each, and the page-aligned ring of their
/// descriptors through which the kernel takes them and we hand them back.
struct Buffers {
    entries: *mut types::BufRingEntry,
    layout: Layout,
    /// The buffers' memory, only ever reached through `base`: the kernel writes into
    /// it behind our back, so no reference to more than a finished buffer is made.
    _data: Box<[u8]>,
    base: *mut u8,
    count: u16,
    tail: u16,
}

impl Buffers {
    fn new(count: u16) -> Self {
        let layout = Layout::from_size_align(usize::from(count) * size_of::<types::BufRingEntry>(), 4096)
            .expect("a small power of two");
        // SAFETY: the layout has a non-zero size (count ≥ 1).
        let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        if entries.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        let mut data = vec![0u8; usize::from(count) * BUFFER_BYTES].into_boxed_slice();
        let base = data.as_mut_ptr();
        let mut buffers = Self {
            entries,
            layout,
            _data: data,
            base,
            count,
            tail: 0,
        };
        for id in 0..count {
            buffers.give_back(id);
        }
        buffers.publish();
        buffers
    }

    /// Puts buffer `id` at the ring's tail; the kernel sees it at the next [`Buffers::publish`].
    fn give_back(&mut self, id: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        let addr = self.base.wrapping_add(usize::from(id) * BUFFER_BYTES) as u64;
        // SAFETY: `slot` < `count`, the ring's length. The kernel reads only the entries
        // between its head and the published tail, and this one is past the tail.
        let entry = unsafe { &mut *self.entries.add(slot) };
        entry.set_addr(addr);
        entry.set_len(BUFFER_BYTES as u32);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the ring's tail is a u16 inside its first entry, which lives as long as
        // `self`; the kernel reads it, and a release store orders the entries before it.
        let tail = unsafe { &*types::BufRingEntry::tail(self.entries).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// What the kernel wrote into buffer `id`, which it has handed back with a completion
    /// and will not touch again until [`Buffers::give_back`].
    fn read(&self, id: u16, len: usize) -> &[u8] {
        assert!(id < self.count, "the kernel names one of our buffers");
        // SAFETY: buffer `id` lies inside the allocation, and the kernel is done with it.
        unsafe { std::slice::from_raw_parts(self.base.add(usize::from(id) * BUFFER_BYTES), len.min(BUFFER_BYTES)) }
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring no longer uses it (see
        // `Ring::run`, which leaks the buffers rather than drop them while it might).
        unsafe { std::alloc::dealloc(self.entries.cast(), self.layout) };
    }
}

// SAFETY: the memory both pointers reach is owned by `Buffers` alone, moved with it to
// the ring's thread and used only there.
unsafe impl Send for Buffers {}

/// An io_uring set up for the receivers, not yet running.
pub(super) struct Ring {
    ring: IoUring,
    buffers: Buffers,
    /// The receivers read since the last submission, for their `TCP_QUICKACK` hint.
    hints: Vec<usize>,
    /// The receivers' sockets by index, registered with the ring (`register_files`) when
    /// it could be, so that no operation looks its file up.
    fds: Vec<i32>,
    fixed: bool,
    /// The hint goes through the ring (Linux 6.7 and later) until it fails once; then
    /// through `setsockopt`.
    hint_in_ring: bool,
}

impl Ring {
    /// Sets up a ring for `receivers` sockets, or says why this kernel cannot: the caller
    /// then reads them through tokio.
    pub(super) fn new(receivers: usize) -> io::Result<Self> {
        let entries = (receivers.max(1) as u32).next_power_of_two().clamp(64, 8192);
        let ring = IoUring::builder()
            // Enabled on the thread that runs it, which becomes its only submitter;
            // completions are then made only when that thread asks for them, in batches.
            .setup_r_disabled()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(entries * 4)
            .build(entries)?;
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        if !probe.is_supported(opcode::RecvMulti::CODE) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "no multishot receive"));
        }
        let buffers = Buffers::new(entries as u16);
        // SAFETY: the ring of descriptors is page-aligned, `entries` long, and lives in
        // `buffers` as long as the ring uses it.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(buffers.entries as u64, entries as u16, GROUP, 0)?;
        }
        Ok(Self {
            ring,
            buffers,
            hints: Vec::new(),
            hint_in_ring: true,
            fds: Vec::new(),
            fixed: false,
        })
    }

    /// Reads every receiver until `stop` is set, then closes their connections as the
    /// tokio path does and returns their outcomes. Blocks: run it on a thread of its own.
    pub(super) fn run(mut self, mut receivers: Vec<Receiver>, stop: Arc<AtomicBool>) -> Vec<Outcome> {
        if let Err(e) = self.ring.submitter().register_enable_rings() {
            for r in &mut receivers {
                r.end(format!("error: io_uring: {e}"));
            }
            return receivers.into_iter().map(|r| r.client.finish()).collect();
        }
        self.fds = receivers.iter().map(|r| r.socket.as_raw_fd()).collect();
        self.fixed = self.ring.submitter().register_files(&self.fds).is_ok();
        let mut rearm: Vec<usize> = (0..receivers.len()).collect();
        let wake = types::Timespec::new().nsec(WAKE_EVERY.as_nanos() as u32);
        while !stop.load(Ordering::Acquire) {
            for i in rearm.drain(..) {
                let r = &mut receivers[i];
                if !r.ended {
                    let receive = match self.fixed {
                        true => opcode::RecvMulti::new(types::Fixed(i as u32), GROUP).build(),
                        false => opcode::RecvMulti::new(types::Fd(self.fds[i]), GROUP).build(),
                    };
                    self.push(&receive.user_data(i as u64));
                    r.armed = true;
                }
            }
            if let Err(e) = self.wait(&wake) {
                for r in &mut receivers {
                    r.end(format!("error: io_uring: {e}"));
                }
                break;
            }
            self.complete(&mut receivers, &mut rearm);
        }

        // Stopped, as a tokio client is: nothing more is read, and the server is told.
        for r in receivers.iter_mut().filter(|r| !r.ended) {
            let _ = (&r.socket).write_all(&r.frames.close_frame());
            r.ended = true;
        }
        self.push(
            &opcode::AsyncCancel2::new(types::CancelBuilder::any())
                .build()
                .user_data(CANCEL),
        );
        let deadline = Instant::now() + CANCEL_WAIT;
        while receivers.iter().any(|r| r.armed) && Instant::now() < deadline {
            if self.wait(&wake).is_err() {
                break;
            }
            self.complete(&mut receivers, &mut Vec::new());
        }
        if receivers.iter().any(|r| r.armed) {
            // The kernel may still write into the buffers: they must outlive it.
            std::mem::forget(self.buffers);
        } else {
            let _ = self.ring.submitter().unregister_buf_ring(GROUP);
        }
        receivers.into_iter().map(|r| r.client.finish()).collect()
    }

    fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: a receive reads into the provided buffers, which outlive it (see
            // `run`); a hint reads a static; a cancellation points at nothing.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            // The submission queue is full: hand it to the kernel and try again.
            let _ = self.ring.submit();
        }
    }

    /// Submits what was queued and waits for a completion, or for `timeout`.
    fn wait(&mut self, timeout: &types::Timespec) -> io::Result<()> {
        let args = types::SubmitArgs::new().timespec(timeout);
        match self.ring.submitter().submit_with_args(1, &args) {
            Err(e) if !matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Takes every completion: reads go to their clients, and a receive the kernel ended
    /// is queued in `rearm` while its connection is alive.
    fn complete(&mut self, receivers: &mut [Receiver], rearm: &mut Vec<usize>) {
        let mut gave_back = false;
        for cqe in self.ring.completion() {
            if cqe.user_data() == CANCEL {
                continue;
            }
            if cqe.user_data() == HINT {
                self.hint_in_ring = false;
                continue;
            }
            let r = &mut receivers[cqe.user_data() as usize];
            let result = cqe.result();
            if let Some(id) = cqueue::buffer_select(cqe.flags()) {
                if result > 0 && !r.ended {
                    r.take(self.buffers.read(id, result as usize));
                    self.hints.push(cqe.user_data() as usize);
                }
                self.buffers.give_back(id);
                gave_back = true;
            }
            match result {
                1.. => {}
                0 => r.end("eof".into()),
                // Out of buffers (they are given back below) or cancelled at the end.
                e if e == -libc::ENOBUFS || e == -libc::ECANCELED => {}
                e => r.end(format!("error: {}", io::Error::from_raw_os_error(-e))),
            }
            if !cqueue::more(cqe.flags()) {
                r.armed = false;
                if !r.ended {
                    rearm.push(cqe.user_data() as usize);
                }
            }
        }
        if gave_back {
            self.buffers.publish();
        }
        self.give_hints();
    }

    /// Lets the kernel delay the ACK of what each socket just read, as the tokio path does
    /// after each read ([`delayed_ack`]): through the ring, without a system call each.
    fn give_hints(&mut self) {
        let mut hints = std::mem::take(&mut self.hints);
        let (level, name, off) = (
            libc::IPPROTO_TCP as u32,
            libc::TCP_QUICKACK as u32,
            (&raw const QUICKACK_OFF).cast(),
        );
        for i in hints.drain(..) {
            let fd = self.fds[i];
            if self.hint_in_ring {
                let hint = match self.fixed {
                    true => opcode::SetSockOpt::new(types::Fixed(i as u32), level, name, off, 4).build(),
                    false => opcode::SetSockOpt::new(types::Fd(fd), level, name, off, 4).build(),
                };
                self.push(&hint.flags(squeue::Flags::SKIP_SUCCESS).user_data(HINT));
            } else {
                // SAFETY: `fd` is a receiver's socket, open for as long as the ring runs.
                delayed_ack(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) });
            }
        }
        self.hints = hints;
    }
}
