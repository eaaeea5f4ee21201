"""Incoming traffic benchmark: one run, one table (run as root).

    .venv/bin/python bench/incoming.py [--megabytes 500] [--repeat 3] [--requests 2000] [--rate 1000]
                                       [--paced-seconds 10] [--seconds 30] [--quick]

A client in the "client" namespace talks to the pod's address. The pod's namespace runs one app
(``apps/sink_and_counter.py``: a byte sink and a keep-alive HTTP responder) for the whole run; the
same app also runs locally under ``pymirrord exec``: stealing with handover (a local agent passes each
client's socket to the app), stealing relayed (``PYMIRRORD_HANDOVER=0``: the agent is reached over TCP
as a remote one is, and each stolen connection gets a tunnel of its own to it, handed to the app),
stealing with ``PYMIRRORD_TUNNELS=0`` as well (the ``messages`` column: every byte crosses agent,
websocket and session, the path when tunnels cannot be opened), stealing through an editor session (the
helper, ``pymirrord lsp``, prepares the launch as VS Code asks it to and the app runs with the environment
it returned: each tunnel goes to the app, and the agent reports the bytes and requests it carried, which
the sessions view counts; its rows fill the relayed column), and mirroring, relayed and as messages. Each
of those runs serves all of its phases, so the table compares paths measured minutes apart.

Phases, and the goal each row is held to (the ``goal`` column names the cell it applies to):

- steal upload: the client sends ``--megabytes`` to the sink, direct and stolen on each path,
  ``--repeat`` times each; the median run's MB/s and its ratio to direct. Each of a path's uploads
  follows a direct one to a second sink in the pod that no run serves, and the ratio is to the median of
  those: this shared machine's speed drifts over minutes (direct uploads went from 6.3 to 8.9 GB/s in
  one day), and a ratio to direct uploads made minutes earlier swung with it. The direct column holds
  the first uploads of the run. Goal: relayed >= 0.5x. A second row checks that the app got every byte
  on each path;
- steal upload through an editor session: the same, and the bytes the session's view counted (all of
  the ``--repeat`` uploads). Goal: relayed >= 0.5x, every byte counted;
- mirror upload: the same uploads to the pod's sink while the local copy mirrors them; the client's MB/s
  against direct, the copy's own pace (its bytes over the time from the client's first byte to the
  copy's last: a captured copy trails its client, see below), and whether the copy received every
  byte of each. A mirrored copy is always relayed (the agent hands over only stolen connections of a
  port nobody mirrors), so there is no handover cell. Goal: relayed >= 0.5x for the client and for the
  copy, and all bytes copied relayed (as messages a copy that lags 64 MiB is given up). A
  last mirror row runs the same uploads with the port redirected through the agent
  (``PYMIRRORD_MIRROR_CAPTURE=0``), where the copy keeps pace with the client because the client waits
  for the agent;
- the machine's CPU: for the steal and mirror uploads and the capture reference, the CPU seconds the
  whole machine was busy per GB (every process and the kernel's own work, from ``/proc/stat``, sampled
  every 5 ms by ``bench_runs.MachineCpu`` and summed over the ``--repeat`` uploads, since its ticks are
  10 ms) from the client's first byte to its last, or to the copy's last for a mirror; against the
  direct uploads', and the pace the path could reach at most with every core of the machine to itself
  (the cores over its CPU per byte, against direct's speed). No goal: it says where a figure's ceiling is;
- references, with no pymirrord, in the relayed column: the same uploads through ``apps/bare_relay.c``
  (built with the machine's C compiler), a blocking loop of the agent's own design with nothing around
  it, splicing as for a stolen connection and ``tee``-ing to a second sink in the pod as for a mirrored
  one; a client that writes every byte to both sinks itself, a mirror with no relay at all; and a
  mirror made by packet capture (``apps/capture_copy.py``, Python), where the client's connection goes
  straight to the pod's sink and the captured segments' payload is written to the second sink, with
  how many of the copies came whole and the pace of those. They show what the relayed rows could be at
  best on the machine of the run, and what a mirror out of the connection's path would allow;
- one at a time: ``--requests`` requests on one keep-alive connection, each sent when the last answer
  came (after 100 untimed ones); p50 and p99 added to direct. Goal: handover adds <= 1 ms at p50;
- paced: ``--rate`` requests/s (1,000 for the goal) for ``--paced-seconds`` over 4 keep-alive
  connections, each request's latency counted from when it was due, so a late answer also charges
  the requests it held up. Goal: relayed, messages and the editor session add <= 0.5 ms at p50;
- mirror loss: ``--rate`` requests/s for ``--seconds`` over 20 connections to the pod while the local
  copy (relayed, as every mirror) counts what it gets; requests the pod answered that never reached
  the copy are lost. Goal: 0 lost;
- recovery: the agent is SIGKILLed at the end of each steal run; how long until the pod's own app
  answers again. Goal: <= 2000 ms on both paths.

``--quick`` shrinks every phase to a smoke run of a few seconds; its numbers mean nothing.

Where the time goes
-------------------
Profiled with py-spy (``--gil``: Python time) and per-process CPU from ``/proc`` while 1,000 MB were
stolen relayed, on 2 cores:

- Before the relay was reworked the agent spent 1.61 s of CPU per GB and the session 0.97 s (548 MB/s,
  0.19x; 0.10x in a run of this script). The agent's Python time went to asyncio's ``StreamReader``,
  which appends every chunk to one buffer and copies it out again (58%), and to the websockets
  package's send path (a frame object per message, header and payload joined, the rest copied into
  the transport's buffer whenever the socket took only part: 33%). The session's went to the websockets
  reader (``buffer +=`` then a slice per frame), our decoder's slice, and the app's write buffer.
- What changed: a websocket of our own (``pymirrord.transport``) that writes with ``writev`` from a queue
  of views (no join, no send buffer), reads a large payload straight into a buffer of its own, and
  carries a burst of protocol messages in one websocket message; relays read with ``ChunkReader`` (the
  socket's chunks as they are). Now about 0.75 s per GB in the agent and 0.6 s in the session
  (830-940 MB/s, 0.29-0.39x), of which Python holds the GIL for about 0.17 s in the agent: the rest is
  the kernel.
- What is left is three TCP hops instead of one (client to agent over the veth pair, agent to session
  and session to app over loopback), each a send and a receive copy in the kernel. A bare Python
  ``recv``/``sendall`` relay costs 0.27 s per GB on this machine; ``splice`` through a pipe 0.24 s (no
  gain worth its complexity: loopback copies anyway). The client (about 0.35 s per GB) and the app
  (about 0.45 s) share the same 2 cores, so 0.5x of direct (about 1.4 GB/s) would leave the agent and
  the session 0.6 s per GB together: less than two bare copy loops. On 2 cores the relayed path stays
  near 0.3-0.4x; on more cores the four processes stop competing.
- uvloop was measured and not adopted then: no gain here (the agent used 20% more CPU), about 7% on
  the HTTP filter bench. Measured again once relays spliced, it was (see the end).
- Tunnels (``pymirrord.tunnel``) take the websocket and the session out of a stolen connection's way:
  the session opens raw TCP connections to the agent ahead of time, the agent picks one per connection
  and moves the client's bytes into it with ``splice`` (no copy through Python), and ``pymirrord exec``
  hands the tunnel to the app in place of the socket it accepted. Per GB the agent now spends about
  0.3 s of CPU and the session none (was 0.75 and 0.6); 1,270-1,570 MB/s in runs of this script
  (0.40-0.48x of a direct figure that itself swings between 2.4 and 4.5 GB/s). What is left is the
  one extra TCP hop and the agent's splices on the same 2 cores as the client (0.35 s per GB) and the
  app (0.45-0.55 s per GB, asyncio's StreamReader copying every byte again): 0.5x is within reach only
  when direct runs at its slow end.
- A mirrored connection is passed through by the agent (a read and two writes: the pod and each copy's
  tunnel), and the pod's app and the local app both consume every byte: its work is twice a direct
  transfer's, so 0.5x of direct cannot be had on 2 cores; 660-780 MB/s (0.16-0.43x) with tunnels,
  460-610 as messages in runs of 2026-12-06. Earlier figures (0.29-0.31x) came from runs whose copy was
  cut short after its first 4 MB: a relay whose both ends were always ready kept the agent's event loop
  for the whole upload, so the copy's tunnel went unwritten and the session was not even told of the
  connection until the 16 MiB the copy may lag were gone. Relays now move at most ``TURN_BYTES`` (1 MiB)
  per turn of the loop. Measured per process on a 1,000 MB mirrored upload (774 MB/s): the agent 1.11 s
  of CPU, each app about 0.57 s; a stolen one (1,302 MB/s) costs the agent 0.36 s. ``splice`` with
  ``tee(2)`` for the copies (through ``ctypes``; a copy that lags past its pipe spilling to memory) was
  built and measured against the read-and-two-writes relay, alternating, three uploads each: the agent
  then spent 0.36-0.54 s per GB instead of 0.87-1.21, but the pod's app 1.09-1.43 s instead of
  0.47-0.62, and the uploads ran slower, 662-751 MB/s against 717-1,054. Not adopted then; those apps
  were the ``StreamReader`` sink whose speed, it turned out, swung with the state of its heap (below),
  and measured again with the allocation-free sink, ``tee`` wins and is now the mirror's path.
- The same effect made a copying relay (``recv`` and ``sendmsg``) worth measuring for stolen connections
  too: alternating with ``splice``, 1 GB uploads ran at 1,398-1,734 MB/s against 775-1,531, but this
  script's median-of-3 uploads at 1,188-1,247 against 1,101-1,474: no difference that stands out of this
  machine's noise. ``splice`` stays, for the agent's CPU (0.22-0.45 s per GB against 0.45-0.61).
- An editor session relays each tunnel itself, for its Sessions view: the client's bytes pass its
  sniffer until it sees they are not HTTP, and are spliced from then on. A 500 MB upload went from 822
  to 1,144-1,299 MB/s with that switch, against 1,186-1,470 for ``pymirrord exec`` relayed, with every
  byte counted.
- A Kubernetes target's connections take tunnels too, through the port-forward: its websocket protocol
  has no half-close, so those tunnels are counted (each end announces its length in a ``TunnelEnd``
  message). The relayed column is that path without the port-forward's own hop (the API server and
  kubelet), which needs a cluster to measure.

Later on 2026-12-06 (per-process CPU from ``/proc``, ``perf`` for the kernel's share, 1,000 MB uploads):

- The bench's sink (``apps/sink.py``, the pod's app and the local one) was an ``asyncio.StreamReader``
  loop. Its CPU per GB was 0.15-0.19 s in some runs and 0.25-0.30 in others, and a long-lived instance
  switched from one to the other at a random point (the outgoing bench's upload peer, the same code,
  went from 6.3 to 2.0 GB/s for good after a few transfers): glibc's heap and the reader's buffer
  growth lining up differently. Paths measured minutes apart were compared against apps of different
  speeds. The sink now reads into one buffer of its own (``asyncio.BufferedProtocol``, nothing
  allocated per read): 0.10-0.11 s per GB in the pod, and direct uploads of 5.3-7.9 GB/s.
- Stolen, relayed: 3,800-4,400 MB/s (0.60-0.68x) in ``perf``-watched runs; in five runs of this script
  3,710-4,246 MB/s, 0.45-0.67x as direct went from 6.3 to 8.9 GB/s. Per GB the agent spends 0.06-0.11
  s, the session nothing, the client 0.13-0.17 s and the local app 0.11-0.18 s, against 0.10-0.11 for
  the same app in the pod. The app's extra goes with ``splice`` (the pages it reads were referenced
  longer): with the agent copying instead (``recv`` and ``send``) the app spends 0.10-0.11 s and the
  client 0.12-0.13, but the agent 0.21-0.23: about the same in all, at the same speed (3,790-4,173
  MB/s against 3,968-4,509), so ``splice`` stays.
- Mirrored: with ``tee`` the agent spends 0.16-0.23 s per GB instead of 0.44-0.49 (read once, written
  twice), while the pod's app goes from 0.14-0.17 to 0.17-0.26 and the client from 0.10-0.13 to
  0.18-0.19 (their pages stay referenced until both readers took them). Uploads: 2,175-2,484 MB/s
  against 1,875-2,124 in the ``perf``-watched runs, and 2,995 (0.46x) against 2,582 (0.41x) in runs of
  this script. A copy's pipe is now emptied to memory before each ``tee`` (a pipe holds buffers, not
  bytes: small writes filled a lagging copy's pipe long before its bytes did, and the copy was dropped);
  2,913-2,942 MB/s in ``perf``-watched runs after that, the agent at 0.14-0.17 s per GB, and 2,704-2,972
  (0.31-0.42x of direct figures of 7.0-8.9 GB/s) in runs of this script. Below 0.5x still: four busy
  processes at about 0.75 s of CPU per GB together share two cores, where a direct upload needs
  0.25-0.3.
- The reference rows, first measured on 2026-12-06 by hand (nine runs next to direct, 1,000 MB each):
  a client writing every byte to two sinks, with no relay at all, reached 0.49-0.65x of direct, and the
  bare ``tee`` relay in C 0.38-0.56x. The floor is the machine: two apps each consuming every byte and a
  client producing them share two cores, where a direct upload keeps one app and one client busy.
  pymirrord's mirror ran at 92-98% of the bare relay's speed in the same runs (2,932-3,017 MB/s against
  3,072-3,201), and its steal at 84-94% of the bare ``splice`` relay's (4,037-4,458 against 4,737-5,198,
  0.65-0.72x of direct): what is left above the relays is small next to what the cores cost.
- Through an editor session: 3,067-3,399 MB/s (0.38-0.53x) in five runs: the session relays each tunnel
  (splicing once its sniffer let go), one more loopback hop than ``pymirrord exec``; per GB the helper
  spends 0.09-0.12 s. Copying there instead of splicing: 2,849-3,300 MB/s with the helper at 0.26-0.31
  s, no gain.

In the evening of 2026-12-06, with uvloop as the agent's and the session's loop (``pymirrord.event_loop``:
the agent's work per relayed byte is now mostly the loop's turn around each ``splice``, which uvloop
does in C), ten runs of this script on a machine running slower than in the afternoon (direct 4.0-7.0
GB/s): three, then three after a mirrored copy's lag bound went from 16 to 64 MiB, then four after an
editor session's tunnels went to the app (below):

- Stolen, relayed: 2,907-3,325 MB/s, 0.49-0.69x of the direct uploads paired with them (at or above
  0.5x in nine of the ten); the bare ``splice`` relay in C 3,408-4,398 (0.56-0.88x): pymirrord at
  71-91% of it.
- Through an editor session, while the session relayed each stolen connection's tunnel so that its
  sniffer saw the requests and its view counted the bytes: 2,464-2,798 MB/s, 0.41-0.49x, 76-92% of
  ``pymirrord exec`` relayed in the same runs, the session's relay hop being the difference. Now the
  tunnel goes to the app, and the agent counts the bytes its relay moves and finds the requests with
  the same sniffer (``ClientHello.report_traffic``, ``TrafficReport``): 2,862-3,514 MB/s, 0.51-0.66x,
  98-110% of ``pymirrord exec`` in the same runs, with every byte counted (after a bounded wait for the
  report of a connection's last bytes, which travels as it ends).
- Mirrored, relayed: 2,131-2,471 MB/s, 0.34-0.44x, every byte copied; the bare ``tee`` relay in C
  2,244-2,607 (0.36-0.45x), pymirrord at 86-107% of it; the client writing to two sinks with no relay
  2,978-3,068 (0.47-0.58x). Any mirror that gives the local app its own copy costs at least that
  second write and read, so on 2 cores 0.5x is at the edge of what even no relay at all reaches.
- A copy may now lag 64 MiB behind the pod's traffic before it is dropped (``flow.COPY_LAG_LIMIT``),
  on every path: at 16 MiB, a 50 MB mirrored upload in the test suite lost its copy when the local app
  ran slower than the pod's for a moment, both sharing two cores with the tests beside them.
- Mirrored as messages: 1,497-1,998 MB/s, and the copy was dropped, with a warning, after its first
  109-128 MB (16 MiB bound) and 146-149 MB (64 MiB) in every run: the session decodes every byte and
  writes it to the app, slower than the pod's app takes it, and a copy that lags past the bound is
  given up so that a mirror never slows the pod. The afternoon's runs, with the pod's traffic at about
  1.9 GB/s, kept it whole. The mirror-loss run (1,000 requests/s) lost nothing on either path.
- Keep-alive HTTP at 1,000 requests/s: relayed adds -0.115 to +0.156 ms at p50 (direct's own p50 moved
  between 0.12 and 0.29 ms), the editor session +0.010 to +0.231, messages +0.025 to +0.239; the pod
  answered again 24-40 ms after the agent's SIGKILL.

Later that evening, four runs with the HTTP client in C (``apps/http_load.c``, see ``http_filter.py``;
direct 6.3-8.5 GB/s): stolen relayed 0.48-0.66x (at or above 0.5x in three), the editor session
0.59-0.71x, mirrored 0.40-0.49x; keep-alive at 1,000 requests/s added -0.060 to -0.008 ms relayed and
-0.067 to +0.005 through the editor session.

- Is a relay the reason a mirror stays under 0.5x? A mirror by packet capture (``apps/capture_copy.py``,
  a reference row since then) leaves the client's connection alone: a packet socket in the pod's
  namespace, filtered in the kernel to the sink's port, gets a reference to each segment, and a Python
  loop writes their payload in order to a second sink. The client ran at 0.52-0.60x of direct, but
  half the copies had holes. The kernel had dropped nothing (``PACKET_STATISTICS``): the capture hands
  over segments in the order two CPUs reach them, which is not always the connection's, and the first
  version wrote what came. Put back in order (segments ahead of a missing one wait for it, a
  retransmission is trimmed to what is new), every copy came whole: 0.48-0.67x in seven runs, 21 of
  21 copies whole.
- So the agent now mirrors that way (``pymirrord.agent.tcp_capture``, ``capture``,
  ``captured_mirror``): a port that sessions only mirror is not redirected, and the copies go down the
  same tunnels as before. Mirrored relayed: 0.53-0.56x in six runs (from 0.34-0.49x), every copy
  whole, the agent at 0.38-0.42 s of CPU per GB copied: a read from the packet socket and a write to
  the tunnel for each 64 KiB segment (the NIC's segmentation happens later, so the capture sees them
  whole), which is most of what it costs. The first version lost its copies in bulk uploads: it copied
  each segment's payload into ``bytes`` before writing it, fell behind, and the kernel dropped
  segments. It now writes each straight from the capture's buffer and copies only what a tunnel does
  not take at once.

In the night of 2026-12-06 (direct 6.7-9.1 GB/s), the client's speed turned out not to be the whole of
a captured mirror's story:

- The copy trails the client. Watched from ``/proc/PID/net/packet`` during 1,000 MB uploads, the
  capture socket's queue reached its limit (``RECEIVE_BUFFER``, which the kernel doubles: 256 MiB of
  packets) in two of four: the agent takes 0.29-0.41 s of CPU per GB copied, so on two cores it
  copies at 2.9-3.3 GB/s while the client sends at 3.3-4.2, and the kernel holds the difference. The
  copy rows now give the copy's own pace, from the client's first byte to the copy's last: 0.39-0.43x
  of direct in three runs, against 0.49-0.56x for the client.
- So a captured copy of a long enough bulk upload is given up: in 1,000 MB uploads, at least 15 of 69
  copies tonight (the kernel dropped a few segments once the queue was full, and the agent warned; some of
  those runs also polled ``/proc`` or counted in the agent), none of the nine 500 MB ones. Every byte
  passes the agent twice (a read from the packet socket, from memory another CPU wrote, and a write to the
  tunnel, whose receiving side the kernel also runs in the agent's time) where an app reads it once (about
  0.11 s per GB): perf finds 71% of the agent's time in the kernel (those copies and TCP), 22% in the
  interpreter and 6% in libc, and 8% of the bytes go through the copy queue because the tunnel was full.
  ``nice -10`` on the agent did not keep the copies whole either (one given up in six). A memory-mapped
  capture ring would move the first copy into the client's time (the kernel writes the ring as the segment
  arrives), not remove it, so it was not built. Reading a batch of segments one after the other into a 4
  MiB buffer and writing each copy's share with one ``sendmsg`` per batch was built and measured,
  alternated with the segment-at-a-time loop, five 1,000 MB uploads each in three rounds: the agent's CPU
  per GB moved within the noise (0.34-0.48 s against 0.37-0.49), and all 15 of its copies were given up
  against 4 of 15 (the kernel dropped over a thousand segments per upload), most likely because the bytes
  left the CPU's caches between the read and the write, where the one 256 KiB buffer read and written at
  once keeps them. Not kept.
- With the port redirected through the agent (``PYMIRRORD_MIRROR_CAPTURE=0``, the new row) nothing is
  lost, because the client waits for the agent: client and copy both at 0.34-0.38x. Capture is kept
  as the default: the pod's traffic runs faster with it, an agent that dies takes none of the pod's
  connections with it, and the copies of request-sized traffic keep up (the mirror-loss run at 1,000
  requests/s lost none). A copy that cannot keep up is given up with a warning, never passed on with
  a hole, and the pod never waits for it.
- Stolen, relayed: 0.56-0.61x in three runs, the bare ``splice`` relay in C 0.55-0.69x; in six
  alternated 1,000 MB rounds pymirrord ran at 91-111% of the bare relay, which itself was at
  0.44-0.67x of direct: the misses under 0.5x come with the machine, not the relay. Its syscalls
  match the bare relay's (2,413 ``splice`` calls per GB against 2,457, one ``epoll_wait`` per MB). A
  stolen connection's set-up (the agent's accept, the session's connection to the app, the layer
  taking the tunnel) adds 0.86 ms at p50 to a fresh connection's first answer (0.97 ms against 0.11
  direct): under 1% of a 500 MB upload.

On 2026-12-06/07, the machine's CPU rows, in eight runs (two cores; direct at 5.5-7.2 GB/s kept 1.5-1.9 of
them busy; the last run on a slower phase of the machine, where every path cost up to a third more):

- A captured copy's pace is near its machine's ceiling, not held back by a queue or a wait. The mirror
  costs the machine 0.67-0.81 s of CPU per GB copied against direct's 0.24-0.31 (the agent 0.21-0.27 of
  it, the local app 0.11-0.14, the client and the pod's app 0.16 and 0.12-0.14), which allows a copy's
  pace of at most 0.41-0.50x of direct on two cores; the copies kept 0.40-0.49x, 90-98% of it.
- The capture reference (``apps/capture_copy.py``) had a 64 MiB queue, and its whole copies, 0.55-0.65 s
  per GB, were those that never lagged far. Given the agent's 1 GiB queue (since then), it got 11 of 11
  copies whole in three runs, at 0.45-0.47x, for 0.66-0.71 s per GB: the cost of pymirrord's captured
  mirror. Its process spends 0.18-0.21 s per GB (a blocking loop, no event loop) where the agent spends
  0.21-0.27. How far a copy lags does not change what it costs the agent: in ten 1,000 MB uploads whose
  copies queued 199-363 MB at their peak, the agent spent 0.22-0.25 s per GB, in no order of the lag.
- The agent read each captured packet with its address, and CPython names the address's interface with
  an ``ioctl`` (``SIOCGIFNAME``) per packet: 16,690 calls in a 1,000 MB upload. The kernel filter now
  tells arriving from leaving packets itself (``capture.port_filter``) and the agent reads with
  ``recv_into``: none of those calls. In alternated runs of six 1,000 MB uploads, on a slow phase of the
  machine, the agent's CPU per GB did not move beyond the noise (0.31-0.39 s against 0.32-0.38).
- Relayed steal costs 0.40-0.54 s per GB, at most 0.58-0.81x, and ran at 0.47-0.64x; as messages
  1.19-1.74 s.
- The capture socket's queue went from 256 MiB to 1 GiB (``capture.RECEIVE_BUFFER``, held only while the
  agent lags): a 1,000 MB copy at full speed queued up to 547 MB (``/proc/PID/net/packet``), and 22 of
  22 such copies came whole while that was watched, then 15 of 15 in three ``--megabytes 1000 --repeat
  5`` runs, where at 256 MiB at least 15 of 69 had been given up. A copy that outruns even that queue is
  still given up with a warning.

On 2026-12-07:

- Where the agent's CPU went when a copy lagged: a packet the copy's tunnel refused was copied into the
  agent's memory (with the page faults of a queue hundreds of MB long) and written from there, while the
  packets after it waited in the kernel's queue anyway. The capture now stops reading while a copy's
  tunnel is full, for at most 0.1 s per stall and while the kernel holds under 256 MiB
  (``agent.capture_hold``). In six alternated pairs of 1,000 MB uploads, the agent spent 0.18-0.22 s per
  GB against 0.21-0.27, the machine 0.58-0.67 s against 0.62-0.73, and the copies' pace went from
  2,727-3,160 MB/s to 2,910-3,417; the kernel's queue peaked at 37-255 MB (547 MB before). With ``perf
  stat`` on the agent, a 1,000 MB copy took 16,635 ``recvfrom`` and 16,627 ``sendto``: one of each per
  captured segment, with 62 stalls.
- The method's floor on this machine, measured with a capture written in C for the purpose (the
  reference's loop, not kept): 0.11-0.13 s of its own CPU per GB, the machine 0.43-0.57 s, copies at
  0.47-0.85x of direct where the Python reference kept 0.39-0.64x in the same alternated runs. The agent
  spends 0.18-0.22 s, of which 0.04-0.09 s is Python's (``CapturedConnections.feed`` alone takes about
  1.3 us per segment): what a native agent would save.

Later on 2026-12-07:

- The capture handed on each packet's events before reading the next, so every captured segment cost a
  ``sendto`` of its own and a pass through the mirror's Python. It now reads 4 packets, each into a
  buffer of its own, before handing their events on, and a connection's consecutive segments go down
  each tunnel in one ``sendmsg`` (``capture.SLOTS``). In six alternated pairs of 1,000 MB uploads, the
  copies kept 0.56-0.65x of direct against 0.46-0.52x, the agent spent 0.13-0.16 s of CPU per GB
  against 0.17-0.22, and the machine 0.50-0.55 s against 0.54-0.62. Groups of 2 or 8 did as well.
  Groups of 64 (4 MiB, past the CPU's 2 MiB cache) fell to 0.34-0.40x, the agent's system time up from
  0.12-0.20 s per GB to 0.22-0.27: what the agent sends must still be in the cache from its reading.
- In this script's nine runs since (two from a clean clone), the copy kept 0.51-0.75x of direct in seven,
  the machine spending 0.47-0.72 s per GB on it, and 0.39x and 0.41x in two, on slow phases of the
  machine that made the mirror cost 1.18 and 0.75 s per GB (ceilings of 0.41x and 0.43x). Such a phase
  hits one part of a run at random: in another run it caught the capture reference, which fell to 0.35x
  at 0.88 s per GB. The reference kept 0.35-0.55x in the same runs, and the capture in C of the finding
  above 0.49-0.65x in the same night's alternated runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_runs import (
    CORES,
    PYTHON,
    MachineCpu,
    answered,
    app,
    bare_relay,
    editor_session,
    exec_argv,
    exec_env,
    http_load,
    http_load_client_name,
    in_pod,
    json_from,
    latencies,
)
from bench_table import MIN_CPU_WINDOW, Row, added, cpu_versus, percentile, print_table, rate_mb, versus

from pymirrord.agent.main import MIRROR_CAPTURE_ENV
from pymirrord.lab import Lab, WatchedProcess, in_namespace

SINK_PORT = 5001
HTTP_PORT = 8001
SECOND_SINK_PORT = 5002
"""A second sink in the pod that no run serves: each path's uploads alternate with direct ones to it, and
the reference rows' copies go there."""
RELAY_PORT = 5003
TEE_RELAY_PORT = 5004
PACED_CONNECTIONS = 4
LOAD_CONNECTIONS = 20
GOAL_RATE = 1000

UPLOAD_CLIENT = """
import json, socket, sys, time
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chunk = b"x" * (1 << 20)
with socket.create_connection((host, port), timeout=120) as connection:
    started = time.monotonic()
    start = time.perf_counter()
    sent = 0
    while sent < size:
        connection.sendall(chunk[: size - sent])
        sent += min(len(chunk), size - sent)
    connection.shutdown(socket.SHUT_WR)
    answer = b""
    while data := connection.recv(64):
        answer += data
    seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "sent": sent, "received": int(answer or 0), "started": started}))
"""

TWO_SINKS_CLIENT = """
import json, socket, sys, time
host, port, copy_port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
chunk = b"x" * (1 << 20)
with socket.create_connection((host, port), timeout=120) as connection, \\
        socket.create_connection((host, copy_port), timeout=120) as copy:
    started = time.monotonic()
    start = time.perf_counter()
    sent = 0
    while sent < size:
        connection.sendall(chunk[: size - sent])
        copy.sendall(chunk[: size - sent])
        sent += min(len(chunk), size - sent)
    connection.shutdown(socket.SHUT_WR)
    copy.shutdown(socket.SHUT_WR)
    answer = b""
    while data := connection.recv(64):
        answer += data
    while copy.recv(64):
        pass
    seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "sent": sent, "received": int(answer or 0), "started": started}))
"""

ONE_AT_A_TIME_CLIENT = """
import json, socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
request = b"GET / HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n"
expected = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nContent-Type: text/plain\\r\\n\\r\\nok"
with socket.create_connection((host, port), timeout=30) as connection:
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    for index in range(count + 100):
        start = time.perf_counter()
        connection.sendall(request)
        answer = b""
        while len(answer) < len(expected):
            answer += connection.recv(4096)
        if index >= 100:  # the first requests warm up caches and the relay
            samples.append((time.perf_counter() - start) * 1000)
print(json.dumps(samples))
"""

RECOVERY_CLIENT = """
import json, socket, sys, time
host, port, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])  # start: the kill, time.monotonic()
while True:
    try:
        with socket.create_connection((host, port), timeout=1) as connection:
            connection.sendall(b"GET / HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n")
            if connection.recv(100).startswith(b"HTTP/1.1 200"):
                break
    except OSError:
        pass
    if time.monotonic() - start > 30:
        break
print(json.dumps((time.monotonic() - start) * 1000))
"""


@dataclass
class PathRun:
    """What one path (direct, a steal with or without handover, a mirror) measured."""

    upload: Uploads
    one_at_a_time: list[float]
    paced: dict[str, Any] | None = None
    recovery_ms: float | None = None
    copied: int | None = None  # bytes the mirrored copy received; None: it never saw the upload end
    loss: tuple[int, int] | None = None  # (answered by the pod, reached the copy)


def client(lab: Lab, script: str, *args: object, timeout: float = 300) -> Any:
    return json_from(lab.client, [PYTHON, "-c", script, *map(str, args)], timeout)


def agent_pid(lab: Lab) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"agent" in argv and lab.target.encode() in argv:
                return int(entry.name)
    raise RuntimeError("no agent process found")


def under_pymirrord(
    lab: Lab, *app_args: str, steal: bool, handover: bool, tunnels: bool = True, capture: bool = True
) -> WatchedProcess:
    """``sink_and_counter.py`` under ``pymirrord exec``, once both of its ports are served; without
    ``capture`` the agent redirects mirrored ports through itself instead of capturing their packets."""
    argv = exec_argv(lab, *(["--steal"] if steal else [])) + app("sink_and_counter.py", *app_args)
    env = exec_env(handover, tunnels)
    if not capture:
        env[MIRROR_CAPTURE_ENV] = "0"
    process = WatchedProcess(argv, env=env)
    verb = "stolen" if steal else "mirrored"
    try:
        process.wait_for_each(f"pymirrord: port {SINK_PORT} {verb}", f"pymirrord: port {HTTP_PORT} {verb}")
    except BaseException:
        process.interrupt()
        raise
    return process


def latency_phases(lab: Lab, args: argparse.Namespace) -> tuple[list[float], dict[str, Any]]:
    """One at a time, then paced, against the HTTP port."""
    one = client(lab, ONE_AT_A_TIME_CLIENT, lab.pod_ip, HTTP_PORT, args.requests)
    paced = http_load(
        lab,
        HTTP_PORT,
        int(args.rate * args.paced_seconds),
        PACED_CONNECTIONS,
        rate=args.rate,
        warmup=20,
        timeout=args.paced_seconds * 10 + 60,
    )
    return one, paced


def word_after(line: str, word: str) -> str:
    """The word that follows ``word`` in an app's report line (``received N at T``)."""
    words = line.split()
    return words[words.index(word) + 1]


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The upload of median time (a single short upload swings by 2x between runs)."""
    return sorted(runs, key=lambda run: float(run["seconds"]))[len(runs) // 2]


@dataclass
class Uploads:
    """A path's ``--repeat`` uploads, each right after a direct one (to the pod's second sink): the
    machine's speed drifts over minutes (direct uploads of 6.3 and 8.9 GB/s in one day), so each path is
    compared with direct uploads made seconds from its own. The median run of each."""

    path: dict[str, Any]
    direct: dict[str, Any]
    copy_seconds: list[float] = field(default_factory=list)
    """For a mirror: from each upload's first byte to its copy's last, for the copies that came whole."""
    cpu: list[float] = field(default_factory=list)
    """The machine's busy CPU seconds over each of the path's uploads (to its copy's end, for a mirror;
    none for a copy that did not come whole)."""
    direct_cpu: list[float] = field(default_factory=list)
    direct_windows: list[tuple[float, float]] = field(default_factory=list)

    def rate(self, size: int) -> float:
        return rate_mb(size, self.path["seconds"])

    def direct_rate(self, size: int) -> float:
        return rate_mb(size, self.direct["seconds"])

    def ratio(self, size: int) -> float:
        """The path's speed against the direct uploads alternated with it."""
        return self.rate(size) / self.direct_rate(size)

    def versus_direct(self, size: int) -> str:
        """The path's MB/s and its ratio to the direct uploads alternated with it."""
        return versus(self.rate(size), self.direct_rate(size))

    def copy_rate(self, size: int) -> float | None:
        """The pace of the median whole copy, MB/s: its bytes over the time from the client's first byte to
        the copy's last (None: no copy came whole)."""
        if not self.copy_seconds:
            return None
        return rate_mb(size, sorted(self.copy_seconds)[len(self.copy_seconds) // 2])

    def copy_ratio(self, size: int) -> float:
        """The median whole copy's pace against direct (0: no copy came whole)."""
        rate = self.copy_rate(size)
        return 0.0 if rate is None else rate / self.direct_rate(size)

    def copy_versus_direct(self, size: int) -> str:
        """The median whole copy's pace and its ratio to direct: a copy that trails its client far has kept
        up with none of it, whatever the client's own speed."""
        rate = self.copy_rate(size)
        return "no copy came whole" if rate is None else versus(rate, self.direct_rate(size))

    def direct_cpu_cell(self, size: int) -> str:
        """The direct uploads' CPU per GB, and how many of the machine's cores they kept busy."""
        if not self.measurable():
            return "too short to measure"
        busy = sum(self.direct_cpu) / self.direct_seconds
        return f"{per_gb(self.direct_cpu, size):.2f} s ({busy:.1f} of {CORES} cores busy)"

    def cpu_versus_direct(self, size: int) -> str:
        """The path's CPU per GB against the direct uploads', and the pace (against theirs) it could
        reach at most if it had every core of the machine to itself, whatever its design."""
        if not self.measurable():
            return "too short to measure"
        if not self.cpu:
            return "no copy came whole"
        direct_rate = size * len(self.direct_windows) / self.direct_seconds
        return cpu_versus(per_gb(self.cpu, size), per_gb(self.direct_cpu, size), direct_rate, CORES)

    @property
    def direct_seconds(self) -> float:
        return sum(end - start for start, end in self.direct_windows)

    def measurable(self) -> bool:
        """Whether the direct uploads lasted long enough for ``/proc/stat``'s 10 ms ticks."""
        return self.direct_seconds >= MIN_CPU_WINDOW


def uploads(
    lab: Lab,
    args: argparse.Namespace,
    *ports: int,
    script: str = UPLOAD_CLIENT,
    after: Callable[[dict[str, Any]], float | None] | None = None,
    before: Callable[[], None] | None = None,
) -> Uploads:
    """``--repeat`` uploads to ``ports`` (the sink's by default), alternated with direct ones; ``before``
    and ``after`` run just before and after each of the path's, ``after`` with the upload's figures; what it
    returns is when the upload's copy ended (``time.monotonic()``), None if it did not come whole."""
    runs: list[dict[str, Any]] = []
    directs: list[dict[str, Any]] = []
    copy_seconds: list[float] = []
    cpu: list[float] = []
    direct_cpu: list[float] = []
    direct_windows: list[tuple[float, float]] = []
    with MachineCpu() as machine:  # only while uploading: its sampling would disturb the latency phases
        for _ in range(args.repeat):
            directs.append(client(lab, UPLOAD_CLIENT, lab.pod_ip, SECOND_SINK_PORT, args.size))
            direct_windows.append(window(directs[-1]))
            direct_cpu.append(machine.busy(*direct_windows[-1]))
            if before is not None:
                before()
            runs.append(client(lab, script, lab.pod_ip, *(ports or (SINK_PORT,)), args.size))
            start, end = window(runs[-1])
            if after is not None:
                if (ended := after(runs[-1])) is None:
                    continue
                copy_seconds.append(ended - start)
                end = ended
            cpu.append(machine.busy(start, end))
    return Uploads(median_run(runs), median_run(directs), copy_seconds, cpu, direct_cpu, direct_windows)


def window(run: dict[str, Any]) -> tuple[float, float]:
    """An upload's first and last moment (``time.monotonic()``, the same clock in every process)."""
    return float(run["started"]), float(run["started"]) + float(run["seconds"])


def per_gb(busy: list[float], size: int) -> float:
    """CPU seconds per GB over uploads of ``size`` bytes (summed: the 10 ms ticks' error at each window's
    ends evens out over several)."""
    return sum(busy) * 1e9 / (size * len(busy))


@dataclass
class References:
    """Uploads with no pymirrord, for what the relayed rows could be at best on this machine: through the
    bare relay in C (``apps/bare_relay.c``; None without a C compiler) spliced as a stolen connection and
    ``tee``'d as a mirrored one, a client writing every byte to two sinks itself (a mirror with no
    relay at all), and a mirror by packet capture (``apps/capture_copy.py``), whose whole copies are
    those with a pace (``Uploads.copy_seconds``)."""

    splice: Uploads | None
    tee: Uploads | None
    two_sinks: Uploads
    capture: Uploads


def measure_references(lab: Lab, args: argparse.Namespace, scratch: str) -> References:
    two_sinks = uploads(lab, args, SINK_PORT, SECOND_SINK_PORT, script=TWO_SINKS_CLIENT)
    capture = measure_capture(lab, args)
    binary = bare_relay(scratch)
    if binary is None:
        return References(None, None, two_sinks, capture)
    to, copy = str(SINK_PORT), str(SECOND_SINK_PORT)
    argvs = (
        [str(binary), "splice", str(RELAY_PORT), lab.pod_ip, to],
        [str(binary), "tee", str(TEE_RELAY_PORT), lab.pod_ip, to, copy],
    )
    with contextlib.ExitStack() as relays:
        for argv in argvs:
            relays.enter_context(WatchedProcess(in_namespace(lab.pod, argv))).wait_for("relay ready")
        spliced = uploads(lab, args, RELAY_PORT)
        teed = uploads(lab, args, TEE_RELAY_PORT)
    return References(spliced, teed, two_sinks, capture)


def measure_capture(lab: Lab, args: argparse.Namespace) -> Uploads:
    """Uploads to the pod's sink while ``apps/capture_copy.py`` copies each to the second sink."""
    captures: list[WatchedProcess] = []

    def start() -> None:
        ports = (str(SINK_PORT), "127.0.0.1", str(SECOND_SINK_PORT))
        captures.append(in_pod(lab, "capture_copy.py", *ports, ready="capture ready"))

    def finish(run: dict[str, Any]) -> float | None:
        capture = captures[-1]
        try:
            # The copy's end trails the client's answer: a bounded wait for its count.
            line = capture.wait_for("copied ", timeout=30)
        except TimeoutError:
            return None
        finally:
            capture.interrupt()
        whole = word_after(line, "copied") == str(run["sent"]) and word_after(line, "holes") == "0"
        return float(word_after(line, "at")) if whole else None

    try:
        return uploads(lab, args, before=start, after=finish)
    finally:
        for capture in captures:
            capture.interrupt()  # one an upload's failure left running (again for the others: harmless)


def measure_direct(lab: Lab, args: argparse.Namespace) -> PathRun:
    upload = median_run(
        [client(lab, UPLOAD_CLIENT, lab.pod_ip, SINK_PORT, args.size) for _ in range(args.repeat)]
    )
    one, paced = latency_phases(lab, args)
    return PathRun(Uploads(upload, upload), one, paced)


def measure_steal(lab: Lab, args: argparse.Namespace, handover: bool, tunnels: bool = True) -> PathRun:
    ports = (str(SINK_PORT), str(HTTP_PORT))
    with under_pymirrord(lab, *ports, steal=True, handover=handover, tunnels=tunnels):
        upload = uploads(lab, args)
        one, paced = latency_phases(lab, args)
        os.kill(agent_pid(lab), signal.SIGKILL)
        # Counted from the kill, so the client's own start-up is part of it rather than hidden.
        killed = time.monotonic()
        recovery = client(lab, RECOVERY_CLIENT, lab.pod_ip, HTTP_PORT, killed, timeout=60)
    return PathRun(upload, one, paced, recovery_ms=float(recovery))


def measure_editor(lab: Lab, args: argparse.Namespace, scratch: str) -> PathRun:
    """Stealing through an editor session (``editor_session``): each tunnel goes to the app and the agent
    reports what it carried; ``copied`` holds the bytes the session's view counted after the uploads."""
    argv = app("sink_and_counter.py", str(SINK_PORT), str(HTTP_PORT))
    with editor_session(lab, Path(scratch, "editor"), "steal", argv, (SINK_PORT, HTTP_PORT)) as helper:
        upload = uploads(lab, args)

        def counted_in() -> int:
            (session,) = helper.request("pymirrord/sessions")["sessions"]
            return int(session["bytes"]["in"])

        # The agent reports a connection's last bytes as it ends, which may trail the client's answer: a
        # bounded wait for the count (a shortfall after it shows in the table).
        deadline = time.monotonic() + 5
        while (counted := counted_in()) < args.size * args.repeat and time.monotonic() < deadline:
            time.sleep(0.02)
        one, paced = latency_phases(lab, args)
    return PathRun(upload, one, paced, copied=counted)


def measure_mirror(
    lab: Lab, args: argparse.Namespace, scratch: str, tunnels: bool = True, capture: bool = True
) -> PathRun:
    """The mirrored upload, then the mirror-loss run (without ``capture``: the upload only)."""
    count_file = os.path.join(scratch, f"count-{tunnels}-{capture}")
    total = int(args.rate * args.seconds)
    local = under_pymirrord(
        lab,
        str(SINK_PORT),
        str(HTTP_PORT),
        count_file,
        str(total),
        steal=False,
        handover=False,
        tunnels=tunnels,
        capture=capture,
    )
    try:
        copies: list[int] = []

        def copy_count(run: dict[str, Any]) -> float | None:
            # The copy ends after the client's own connection did: a bounded wait for its count.
            try:
                line = local.wait_for("received ", timeout=30)  # received N at T
            except TimeoutError:
                return None
            copies.append(int(word_after(line, "received")))
            return float(word_after(line, "at")) if copies[-1] == run["sent"] else None

        upload = uploads(lab, args, after=copy_count)
        # The smallest copy speaks for all; None if one never saw its upload end.
        copied = min(copies) if len(copies) == args.repeat else None
        if not capture:
            return PathRun(upload, [], copied=copied)
        load = http_load(
            lab, HTTP_PORT, total, LOAD_CONNECTIONS, rate=args.rate, timeout=args.seconds * 4 + 60
        )
        pod_answered = answered(load)
        # Copies still in flight when the client finishes are not lost: a bounded wait for them (the app
        # says when its count reaches the number sent).
        with contextlib.suppress(TimeoutError):
            local.wait_for("reached ", timeout=15)
    finally:
        local.interrupt()
    mirrored = int(Path(count_file).read_text()) if os.path.exists(count_file) else 0
    return PathRun(upload, [], copied=copied, loss=(pod_answered, mirrored))


def rows_of(
    args: argparse.Namespace,
    *,
    direct: PathRun,
    handover: PathRun,
    relayed: PathRun,
    messages: PathRun,
    editor: PathRun,
    mirror: PathRun,
    mirror_messages: PathRun,
    mirror_redirected: PathRun,
    references: References,
) -> list[Row]:
    size = args.size
    base = direct.upload.rate(size)

    def copied(run: PathRun) -> str:
        return "no end seen" if run.copied is None else f"{run.copied} of {size}"

    def whole(run: PathRun) -> str:
        received = run.upload.path["received"]
        return "yes" if received == size else f"NO ({received} bytes)"

    rows = [
        Row(
            "steal upload, client MB/s",
            f"{base:.0f} MB/s",
            handover.upload.versus_direct(size),
            relayed.upload.versus_direct(size),
            "relayed >= 0.5x",
            relayed.upload.ratio(size) >= 0.5,
            messages.upload.versus_direct(size),
        ),
        Row(
            "steal upload, every byte reached the app",
            whole(direct),
            whole(handover),
            whole(relayed),
            "all",
            all(run.upload.path["received"] == size for run in (direct, handover, relayed, messages)),
            whole(messages),
        ),
        Row(
            "steal upload, the machine's CPU s per GB (every process and the kernel)",
            relayed.upload.direct_cpu_cell(size),
            handover.upload.cpu_versus_direct(size),
            relayed.upload.cpu_versus_direct(size),
            messages=messages.upload.cpu_versus_direct(size),
        ),
        Row(
            "mirror upload, client MB/s",
            f"{base:.0f} MB/s",
            "-",
            mirror.upload.versus_direct(size),
            "relayed >= 0.5x",
            mirror.upload.ratio(size) >= 0.5,
            mirror_messages.upload.versus_direct(size),
        ),
        Row(
            "mirror upload, the copy's MB/s (client's first byte to the copy's last)",
            "-",
            "-",
            mirror.upload.copy_versus_direct(size),
            "relayed >= 0.5x",
            mirror.upload.copy_ratio(size) >= 0.5,
            mirror_messages.upload.copy_versus_direct(size),
        ),
        Row(
            "mirror upload, the machine's CPU s per GB (client's first byte to the copy's last)",
            mirror.upload.direct_cpu_cell(size),
            "-",
            mirror.upload.cpu_versus_direct(size),
            messages=mirror_messages.upload.cpu_versus_direct(size),
        ),
        Row(
            "mirror upload, bytes the copy received",
            "-",
            "-",
            copied(mirror),
            "relayed: all",
            mirror.copied == size,
            copied(mirror_messages),
        ),
        Row(
            f"mirror upload redirected ({MIRROR_CAPTURE_ENV}=0): client MB/s; copy MB/s; bytes copied",
            f"{base:.0f} MB/s",
            "-",
            f"{mirror_redirected.upload.versus_direct(size)}; copy"
            f" {mirror_redirected.upload.copy_versus_direct(size)}; {copied(mirror_redirected)}",
        ),
    ]
    for measure, upload in (
        ("reference: steal upload through a bare relay in C (splice), client MB/s", references.splice),
        ("reference: mirror upload through a bare relay in C (tee), client MB/s", references.tee),
        (
            "reference: mirror upload with no relay (the client writes to two sinks), MB/s",
            references.two_sinks,
        ),
    ):
        rate = "no C compiler" if upload is None else upload.versus_direct(size)
        rows.append(Row(measure, f"{base:.0f} MB/s", relayed=rate))
    complete = len(references.capture.copy_seconds)
    rows.append(
        Row(
            "reference: mirror upload by packet capture (a Python capture in the pod), client MB/s",
            f"{base:.0f} MB/s",
            relayed=references.capture.versus_direct(size),
        )
    )
    rows.append(
        Row(
            "reference: mirror upload by packet capture, copies that came whole; the copy's MB/s",
            "-",
            relayed=f"{complete} of {args.repeat}; copy " + references.capture.copy_versus_direct(size),
        )
    )
    rows.append(
        Row(
            "reference: mirror upload by packet capture, the machine's CPU s per GB",
            references.capture.direct_cpu_cell(size),
            relayed=references.capture.cpu_versus_direct(size),
        )
    )
    for fraction, name in ((0.5, "p50"), (0.99, "p99")):
        d = percentile(direct.one_at_a_time, fraction)
        h, r, m = (percentile(run.one_at_a_time, fraction) for run in (handover, relayed, messages))
        goal = name == "p50"
        rows.append(
            Row(
                f"keep-alive HTTP one at a time, added {name}",
                f"{d:.3f} ms",
                added(h, d),
                added(r, d),
                "handover <= +1 ms" if goal else "-",
                h - d <= 1.0 if goal else None,
                added(m, d),
            )
        )
    uploaded = size * args.repeat
    rows[3:3] = [
        Row(
            "steal upload through an editor session, client MB/s",
            f"{base:.0f} MB/s",
            "-",
            editor.upload.versus_direct(size),
            "relayed >= 0.5x",
            editor.upload.ratio(size) >= 0.5,
        ),
        Row(
            "steal upload through an editor session, bytes its view counted",
            "-",
            "-",
            f"{editor.copied} of {uploaded}",
            "all",
            editor.copied == uploaded and editor.upload.path["received"] == size,
        ),
    ]
    paced = [run.paced for run in (direct, handover, relayed, messages)]
    assert all(run is not None for run in paced)
    for fraction, name in ((0.5, "p50"), (0.99, "p99")):
        d, h, r, m = (percentile(latencies(run), fraction) for run in paced if run is not None)
        goal = name == "p50"
        rows.append(
            Row(
                f"keep-alive HTTP at {args.rate:g} req/s (paced), added {name}",
                f"{d:.3f} ms",
                added(h, d),
                added(r, d),
                f"relayed, messages <= +0.5 ms at {GOAL_RATE} req/s" if goal else "-",
                max(r, m) - d <= 0.5 if goal and args.rate == GOAL_RATE else None,
                added(m, d),
            )
        )
    assert editor.paced is not None and direct.paced is not None
    d, e = (percentile(latencies(run), 0.5) for run in (direct.paced, editor.paced))
    rows.append(
        Row(
            f"keep-alive HTTP at {args.rate:g} req/s (paced) through an editor session, added p50",
            f"{d:.3f} ms",
            "-",
            added(e, d),
            f"<= +0.5 ms at {GOAL_RATE} req/s",
            e - d <= 0.5 if args.rate == GOAL_RATE else None,
        )
    )
    sent = int(args.rate * args.paced_seconds)
    counts = [answered(run) for run in paced if run is not None]
    rows.append(
        Row(
            "keep-alive HTTP paced, requests answered",
            f"{counts[0]} of {sent}",
            f"{counts[1]} of {sent}",
            f"{counts[2]} of {sent}",
            goal="all",
            met=all(count == sent for count in counts),
            messages=f"{counts[3]} of {sent}",
        )
    )
    assert mirror.loss is not None and mirror_messages.loss is not None

    def lost(loss: tuple[int, int]) -> str:
        return f"{loss[0] - loss[1]} lost ({loss[0]} answered, {loss[1]} copied)"

    rows.append(
        Row(
            f"mirror at {args.rate:g} req/s for {args.seconds:g} s, lost copies",
            "-",
            "-",
            lost(mirror.loss),
            "0 lost",
            all(copied >= answered for answered, copied in (mirror.loss, mirror_messages.loss)),
            lost(mirror_messages.loss),
        )
    )
    recoveries = [run.recovery_ms for run in (handover, relayed, messages)]
    assert all(ms is not None for ms in recoveries)
    rows.append(
        Row(
            "pod answers again after agent SIGKILL",
            "-",
            f"{handover.recovery_ms:.0f} ms",
            f"{relayed.recovery_ms:.0f} ms",
            "<= 2000 ms",
            max(ms or 0 for ms in recoveries) <= 2000,
            f"{messages.recovery_ms:.0f} ms",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=500, help="upload size")
    parser.add_argument("--repeat", type=int, default=3, help="steal uploads per path (the median counts)")
    parser.add_argument("--requests", type=int, default=2000, help="one-at-a-time requests")
    parser.add_argument("--rate", type=float, default=GOAL_RATE, help="req/s, paced and mirror-loss runs")
    parser.add_argument("--paced-seconds", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=30, help="length of the mirror-loss run")
    parser.add_argument("--quick", action="store_true", help="a smoke run of every phase: a few seconds")
    args = parser.parse_args()
    if args.quick:
        args.megabytes, args.requests, args.paced_seconds, args.seconds, args.repeat = 4, 100, 0.3, 0.5, 1
    args.size = args.megabytes * 1024 * 1024

    with Lab.create("pmd-bench") as lab, tempfile.TemporaryDirectory() as scratch:
        pod_args = (str(SINK_PORT), str(HTTP_PORT))
        with (
            in_pod(lab, "sink_and_counter.py", *pod_args, ready="all ready"),
            in_pod(lab, "sink.py", str(SECOND_SINK_PORT), ready="sink ready"),
        ):
            direct = measure_direct(lab, args)
            references = measure_references(lab, args, scratch)
            handover = measure_steal(lab, args, handover=True)
            relayed = measure_steal(lab, args, handover=False)
            messages = measure_steal(lab, args, handover=False, tunnels=False)
            editor = measure_editor(lab, args, scratch)
            mirror = measure_mirror(lab, args, scratch)
            mirror_messages = measure_mirror(lab, args, scratch, tunnels=False)
            mirror_redirected = measure_mirror(lab, args, scratch, capture=False)
    print_table(
        rows_of(
            args,
            direct=direct,
            handover=handover,
            relayed=relayed,
            messages=messages,
            editor=editor,
            mirror=mirror,
            mirror_messages=mirror_messages,
            mirror_redirected=mirror_redirected,
            references=references,
        ),
        f"({args.megabytes} MB uploads, median of {args.repeat}, each path's ratio to the direct uploads"
        f" alternated with its own; {args.requests} requests one at a time, {args.rate:g} req/s paced for"
        f" {args.paced_seconds:g} s and mirrored for {args.seconds:g} s; HTTP client"
        f" {http_load_client_name()}; one run)",
    )


if __name__ == "__main__":
    main()
