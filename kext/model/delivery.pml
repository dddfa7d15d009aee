/*
 * delivery.pml - the delivery contract of docs/protocol.md as a Promela
 * model, checked by spin (make -C kext model).
 *
 * The producer is kext/core/kextlog_core.c reduced to what the contract
 * rests on: a ring of RING frames that keeps records until they are
 * acknowledged; a record that finds it full goes to the last resort and
 * joins a pending loss, which enters the ring as one RING_FULL LOSS before
 * the next record that fits; HELLO on connect, then nothing until RESUME(s),
 * which releases what precedes s, reports what is no longer held as one
 * RELEASED LOSS and replays the ring from s; an ACK releases what it covers,
 * never more than this connection was sent.  The consumer is `kextlog
 * ingest`: it resumes from its committed high-water mark + 1, reads frames
 * into a batch, commits the batch (replays at or below the mark ignored) and
 * only then acknowledges; it may crash at any point, losing its batch and
 * the connection (both directions' frames in flight), and reconnect.
 * Records are logged at any moment, N of them, connected or not.
 *
 * Checked in every interleaving, with up to CRASHES crashes:
 * - nothing is acknowledged before it is committed;
 * - within a connection the frames' seqs are dense from the RESUME on;
 * - no seq is ever stored or counted lost twice;
 * - at the end every seq is stored exactly once, or counted lost exactly
 *   once, and counted lost only when the ring could not keep it: a crash of
 *   the consumer loses nothing the ring held (spin reports an invalid end
 *   state when the consumer can never account for every seq).
 *
 * Each BUG_* flag plants a mistake the check must catch (make model runs
 * them and fails if one passes):
 *   BUG_ACK_BEFORE_COMMIT  the consumer acknowledges frames as it reads them
 *   BUG_RESUME_SKIPS       the consumer resumes one seq past its mark
 *   BUG_NO_REPLAY          the producer resumes where it stopped sending to
 *                          the last client, not from the RESUME's seq
 * (Without the first property, the last one catches BUG_ACK_BEFORE_COMMIT
 * too: a record acknowledged and then lost in a crash comes back as a
 * RELEASED loss.)
 */

#ifndef N
#define N 5        /* records logged */
#endif
#ifndef RING
#define RING 2     /* frames the ring holds */
#endif
#ifndef CRASHES
#define CRASHES 3
#endif

#define RING_FULL 1
#define RELEASED  2

mtype = { HELLO, LOG, LOSS, ACK, RESUME };

/* Kernel to user: type, first seq, last seq, reason.  Room for a whole
 * connection's worth: HELLO, a RELEASED LOSS, one frame per seq. */
chan down = [N + 2] of { mtype, byte, byte, byte };
/* User to kernel: type, seq. */
chan up = [N + 2] of { mtype, byte };

/* ---- the producer (the kext's core) ---- */
byte next_seq = 1;
byte ring_first[RING], ring_last[RING];
mtype ring_type[RING];
byte head = 0, held = 0;      /* the ring: its oldest frame, how many */
bool pending = false;         /* a run of lost records not yet in the ring */
byte pending_first, pending_last;
bool connected = false;
bool hello_sent = false;
bool streaming = false;
byte cursor = 0;              /* frames after head already sent on this connection */
byte sent_seq = 0;            /* last seq this connection was sent whole */
bool kept[N + 1];             /* the ring took the record (else: last resort) */

/* ---- the consumer (ingest) and its store ---- */
byte high_water = 0;          /* committed */
byte stored[N + 1], lost[N + 1];
byte batch[N + 1];            /* uncommitted: 1 stored, 2 lost */
byte batch_high = 0;          /* last seq read into the batch, 0: empty */
byte want = 0;                /* the seq the next frame must start at */
byte crashes = 0;

inline push(type, first, last) {
	ring_type[(head + held) % RING] = type;
	ring_first[(head + held) % RING] = first;
	ring_last[(head + held) % RING] = last;
	held++
}

inline flush_pending() {
	if
	:: pending && held < RING -> push(LOSS, pending_first, pending_last); pending = false
	:: else -> skip
	fi
}

inline log_record() {
	flush_pending();
	if
	:: !pending && held < RING -> push(LOG, next_seq, next_seq); kept[next_seq] = true
	:: else ->
		if
		:: !pending -> pending = true; pending_first = next_seq
		:: else -> skip
		fi;
		pending_last = next_seq
	fi;
	next_seq++
}

/* Acknowledged frames leave the ring; room may let a pending loss in. */
inline release(seq) {
	do
	:: held > 0 && ring_last[head] <= seq ->
		head = (head + 1) % RING; held--;
		if
		:: cursor > 0 -> cursor--
		:: else -> skip
		fi
	:: else -> break
	od;
	flush_pending()
}

inline oldest_held(result) {
	if
	:: held > 0 -> result = ring_first[head]
	:: else -> result = (pending -> pending_first : next_seq)
	fi
}

inline start_streaming(seq) {
	if
	:: seq == 0 -> seq = 1
	:: else -> skip
	fi;
	if
	:: seq > (pending -> pending_first : next_seq) -> seq = (pending -> pending_first : next_seq)
	:: else -> skip
	fi;
	release(seq - 1);
	oldest_held(oldest);
	sent_seq = seq - 1;
	if
	:: seq < oldest -> down!LOSS, seq, oldest - 1, RELEASED; sent_seq = oldest - 1
	:: else -> skip
	fi;
#ifndef BUG_NO_REPLAY
	cursor = 0;
#endif
	streaming = true
}

active proctype producer()
{
	byte seq, oldest;

end:
	do
	:: atomic { next_seq <= N -> log_record() }
	:: atomic { connected && !hello_sent ->
		oldest_held(oldest); down!HELLO, oldest, next_seq, 0; hello_sent = true }
	:: atomic { up?RESUME, seq -> if
		:: hello_sent && !streaming -> start_streaming(seq)
		:: else -> skip
		fi }
	:: atomic { up?ACK, seq ->
		assert(seq <= high_water); /* nothing acknowledged before it is committed */
		if
		:: streaming ->
			if
			:: seq > sent_seq -> seq = sent_seq /* only what this connection was sent */
			:: else -> skip
			fi;
			release(seq)
		:: else -> skip
		fi }
	:: atomic { streaming && cursor < held ->
		seq = (head + cursor) % RING;
		down!ring_type[seq], ring_first[seq], ring_last[seq], RING_FULL;
		sent_seq = ring_last[seq];
		cursor++ }
	od
}

/* ---- the consumer ---- */

inline read_frame(type, first, last) {
	assert(first == want); /* dense from the RESUME on, within a connection */
	seq = first;
	do
	:: seq <= last -> batch[seq] = (type == LOG -> 1 : 2); seq++
	:: else -> break
	od;
	batch_high = last;
	want = last + 1;
#ifdef BUG_ACK_BEFORE_COMMIT
	up!ACK, batch_high
#endif
}

inline commit() {
	seq = high_water + 1;
	do
	:: seq <= batch_high ->
		assert(stored[seq] + lost[seq] == 0); /* once */
		if
		:: batch[seq] == 1 -> stored[seq]++
		:: batch[seq] == 2 -> lost[seq]++
		fi;
		batch[seq] = 0;
		seq++
	:: else -> break
	od;
	high_water = batch_high;
	batch_high = 0
}

active proctype consumer()
{
	byte type, first, last, reason, seq;

end:
	do
	:: atomic { !connected -> connected = true; want = 0 }
	:: atomic { down?HELLO, first, last, reason ->
#ifdef BUG_RESUME_SKIPS
		want = high_water + 2;
#else
		want = high_water + 1;
#endif
		up!RESUME, want }
	:: atomic { down?LOG, first, last, reason -> read_frame(LOG, first, last) }
	:: atomic { down?LOSS, first, last, reason -> read_frame(LOSS, first, last) }
	:: atomic { batch_high > high_water -> commit(); up!ACK, high_water }
	:: atomic { connected && crashes < CRASHES ->
		/* The batch is gone, and the connection with what was in flight. */
		crashes++;
		seq = high_water + 1;
		do
		:: seq <= N -> batch[seq] = 0; seq++
		:: else -> break
		od;
		batch_high = 0;
		do
		:: down?_, _, _, _
		:: empty(down) -> break
		od;
		do
		:: up?_, _
		:: empty(up) -> break
		od;
		connected = false; hello_sent = false; streaming = false }
	od
}

/* Once every record is logged and committed: each seq is stored once, or
 * counted lost once because the ring could not keep it. */
active proctype accounting()
{
	byte seq = 1;

	(next_seq > N && high_water == N && batch_high == 0);
	do
	:: seq <= N ->
		assert(stored[seq] + lost[seq] == 1);
		assert(lost[seq] == (kept[seq] -> 0 : 1));
		seq++
	:: else -> break
	od
}
