-- The node database as schema version 1 wrote it: FROZEN.
--
-- tests/store/test_migration.py builds a file from this script and opens it
-- with the current code, which must upgrade it to the current version in one
-- transaction and read every row back intact.  Never edit this file to follow
-- a schema change: the point is that files written by version 1 exist.
--
-- Unsigned 64-bit values are stored offset binary (value - 2**63); each such
-- literal has its value in a comment.

PRAGMA journal_mode = WAL;
PRAGMA application_id = 1278366547; -- 0x4C325353, "L2SS"
PRAGMA user_version = 1;

BEGIN;

CREATE TABLE peers (
    id INTEGER PRIMARY KEY,
    did TEXT NOT NULL UNIQUE
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    peer INTEGER NOT NULL UNIQUE REFERENCES peers (id),
    address TEXT,
    path TEXT NOT NULL,
    out_stream INTEGER NOT NULL,
    next_seq INTEGER NOT NULL,
    in_stream INTEGER NOT NULL,
    next_expected INTEGER NOT NULL
);

CREATE TABLE outbound (
    peer INTEGER NOT NULL REFERENCES peers (id),
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL
);

CREATE UNIQUE INDEX outbound_by_seq ON outbound (peer, seq);

CREATE TABLE inbound_streams (
    id INTEGER PRIMARY KEY,
    peer INTEGER NOT NULL REFERENCES peers (id),
    stream INTEGER NOT NULL,
    UNIQUE (peer, stream)
);

CREATE TABLE inbound (
    peer INTEGER NOT NULL REFERENCES peers (id),
    stream INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL
);

CREATE UNIQUE INDEX inbound_by_seq ON inbound (peer, stream, seq);

CREATE TABLE tickets (
    id INTEGER PRIMARY KEY,
    peer INTEGER NOT NULL UNIQUE REFERENCES peers (id),
    ticket BLOB NOT NULL
);

CREATE TABLE prekeys (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state BLOB NOT NULL
);

CREATE TABLE identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    did TEXT NOT NULL,
    keyfile BLOB NOT NULL
);

-- Peer 2's session was deleted; peers rows are never deleted.
INSERT INTO peers (id, did) VALUES
    (1, 'did:key:z6MkhjqttrqupMhwqgYFsejwfwoLxpw2pU7u67xdUhYGADAR'),
    (2, 'did:key:z6MkrATWjnk4jPFYqudpsTounphaUUcGUPjyxV3cb7fpuSjy');

INSERT INTO sessions (id, peer, address, path, out_stream, next_seq, in_stream, next_expected)
VALUES (1, 1, '192.0.2.7:4433', 'quic',
    -7988766420418267256, -- 0x1122334455667788
    -9223372036854775763, -- 45
    8133730453046726784, -- 0xF0E0D0C0B0A09080
    -9223372036854775800); -- 8

INSERT INTO outbound (peer, seq, payload) VALUES
    (1, -9223372036854775766, X'6D657373616765203432'), -- seq 42, 'message 42'
    (1, -9223372036854775765, X'6D657373616765203433'), -- seq 43, 'message 43'
    (1, -9223372036854775764, X'6D657373616765203434'); -- seq 44, 'message 44'

-- An older stream with one message the application never took, then the
-- current stream with two that arrived early (next_expected is 8).
INSERT INTO inbound_streams (id, peer, stream) VALUES
    (1, 1, -9150748177064392952), -- 0x0102030405060708
    (2, 1, 8133730453046726784); -- 0xF0E0D0C0B0A09080
INSERT INTO inbound (peer, stream, seq, payload) VALUES
    (1, -9150748177064392952, -9223372036854775801, X'6F6C642037'), -- old stream, seq 7, 'old 7'
    (1, 8133730453046726784, -9223372036854775799, X'6561726C792039'), -- seq 9, 'early 9'
    (1, 8133730453046726784, -9223372036854775798, X'6561726C79203130'); -- seq 10, 'early 10'

-- StoredSession.to_bytes() of the session with peer 1.
INSERT INTO tickets (id, peer, ticket) VALUES (1, 1, X'0100386469643A6B65793A7A364D6B674B767353625570765250617550633538366A39706458777A7463507961347834363475574C58683634794100386469643A6B65793A7A364D6B686A717474727175704D68777167594673656A7766776F4C787077327055377536377864556859474144415230D2A0CC053EB00A2828A8850EE1178686B52B3E5B3F023D984B3D7C0D73BD0A000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F303132333435363738393A3B3C3D3E3F000001A3185C5000000001A3185DD8941122334455667788F0E0D0C0B0A09080');

-- The private prekey state is opaque to the store.
INSERT INTO prekeys (id, state) VALUES (1, X'7072656B6579732076312066697874757265');

-- An unencrypted identity key file (identity/keyfile.py format).
INSERT INTO identity (id, did, keyfile) VALUES (1, 'did:key:z6MkgKvsSbUpvRPauPc586j9pdXwztcPya4x464uWLXh64yA', CAST('{
  "format": "l2session-identity",
  "version": 1,
  "did": "did:key:z6MkgKvsSbUpvRPauPc586j9pdXwztcPya4x464uWLXh64yA",
  "protection": "none",
  "secret": "gFYjRB7EJKrQPhBrgx3cDU+H+czFPkseDCKSgGa7jrfnxrUvaAOGzh84RO5oqMaYzrdU/Zk8FzibKhXgAgEjxw=="
}
' AS BLOB));

COMMIT;
