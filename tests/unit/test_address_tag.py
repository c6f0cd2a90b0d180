"""What Redis keeps of a client address for the room directory: a keyed digest."""

from chat_common.participants import address_tag


def test_the_digest_is_keyed_and_never_holds_the_address():
    tag = address_tag("secret", "203.0.113.7")
    assert len(tag) == 16 and "203" not in tag
    assert tag == address_tag("secret", "203.0.113.7")
    assert tag != address_tag("other secret", "203.0.113.7")
    assert tag != address_tag("secret", "203.0.113.8")


def test_an_ipv6_subscriber_is_one_address_across_its_64():
    assert address_tag("k", "2001:db8:1:2::1") == address_tag("k", "2001:db8:1:2:ffff::9")
    assert address_tag("k", "2001:db8:1:2::1") != address_tag("k", "2001:db8:1:3::1")
    assert address_tag("k", "::ffff:198.51.100.4") == address_tag("k", "198.51.100.4")
    assert address_tag("k", None) == address_tag("k", "unknown")
