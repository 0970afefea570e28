"""Signed and immutable records through rpcudp_rs.kademlia.Server, interchangeable with
`rpcudp dht put` / `dht get --signed` / `--immutable` on one network."""

import hashlib
import os

from conftest import free_port
from rpcudp_rs.kademlia import Server
from test_kademlia import run_cli


async def test_signed_records_cross_between_server_and_the_cli(tmp_path):
    a, b = Server(), Server()
    await a.listen(free_port(), "127.0.0.1")
    await b.listen(free_port(), "127.0.0.1")
    try:
        seed = f"127.0.0.1:{a._dht.local_addr()[1]}"
        await b.bootstrap([("127.0.0.1", a._dht.local_addr()[1])])
        secret = os.urandom(32)
        public = Server.public_key(secret)
        assert len(public) == 32
        # Ours signs, the CLI reads.
        assert await b.put_signed(secret, "from python", salt=b"s") is True
        code, out, err = await run_cli("dht", "get", "--bootstrap", seed, "--timeout", "1",
                                       "--signed", public.hex(), "--salt", "s")
        assert (code, out.strip()) == (0, "from python"), err
        assert await a.get_signed(public, salt=b"s") == "from python"
        assert await a.get_signed(public) is None  # another salt, another target
        # The CLI signs with a key file (seq above ours), ours reads the newer one.
        key_file = tmp_path / "key"
        key_file.write_text(secret.hex() + "\n")
        code, out, err = await run_cli("dht", "put", "--bootstrap", seed, "--timeout", "1",
                                       "--key-file", str(key_file), "--salt", "s", "from cli")
        assert code == 0, err
        assert "seq 2" in out
        assert await b.get_signed(public, salt=b"s") == "from cli"
        # Ours signs again: seq 3 replaces the CLI's.
        assert await a.put_signed(secret, b"bytes now", salt=b"s") is True
        assert await b.get_signed(public, salt=b"s") == b"bytes now"
        # Immutable records both ways.
        target = await b.put_immutable("hash named")
        assert len(target) == 20
        code, out, err = await run_cli("dht", "get", "--bootstrap", seed, "--timeout", "1",
                                       "--immutable", target.hex())
        assert (code, out.strip()) == (0, "hash named"), err
        code, out, err = await run_cli("dht", "put", "--bootstrap", seed, "--timeout", "1",
                                       "--immutable", "cli immutable")
        assert code == 0, err
        cli_target = bytes.fromhex(next(l.split()[1] for l in out.splitlines() if l.startswith("target ")))
        assert await a.get_immutable(cli_target) == "cli immutable"
    finally:
        a.stop()
        b.stop()


async def test_a_plain_set_over_a_signed_record_is_refused_and_the_record_kept():
    a, b = Server(), Server()
    await a.listen(free_port(), "127.0.0.1")
    await b.listen(free_port(), "127.0.0.1")
    try:
        await b.bootstrap([("127.0.0.1", a._dht.local_addr()[1])])
        secret = os.urandom(32)
        assert await b.put_signed(secret, "genuine") is True
        # The record's target is sha1(public key ‖ salt), here with no salt.
        target = hashlib.sha1(Server.public_key(secret)).digest()
        # An overwrite by a plain store: node a refuses it.
        await b.set_digest(target, "forged")
        assert await a.get_signed(Server.public_key(secret)) == "genuine"
    finally:
        a.stop()
        b.stop()
