"""Probes touch the world (servers, files, hosts) and return observations; claims judge them."""
