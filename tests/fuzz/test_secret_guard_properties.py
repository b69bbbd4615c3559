"""Properties of the secret guard (navigator/secret_guard.py) on generated input: no
secret key or recovery phrase slips through, however it is written or wherever it
sits, and public keys, muxed accounts, transaction hashes and Russian text are never
touched. Examples are bounded so the file runs in seconds."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mnemonic import Mnemonic
from stellar_sdk import Keypair, MuxedAccount, StrKey

from navigator.secret_guard import (
    RECOVERY_PHRASE,
    SECRET_KEY,
    Placeholders,
    bip39_checksum_ok,
    find_secrets,
    redact,
)

PLACEHOLDERS = Placeholders("[секретный ключ скрыт]", "[фраза восстановления скрыта]")
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
WORDLIST = Mnemonic("english")
BOUNDED = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])

RUSSIAN = ("здравствуйте как открыть линию доверия кошелёк адрес ключ токен счёт перевод "
           "ассоциация фонд агент заявка помогите пожалуйста не работает ошибка почему "
           "сколько стоит где купить спасибо вопрос монтенегро будва подгорица взнос "
           "голосование рекомендатель участник")
ENGLISH = ("hello please help my wallet does not work how can I open a trustline the "
           "balance is zero thank you what should I do with this error")

seeds = st.binary(min_size=32, max_size=32)
secret_keys = seeds.map(StrKey.encode_ed25519_secret_seed)
public_keys = seeds.map(StrKey.encode_ed25519_public_key)
russian_text = st.lists(st.one_of(st.sampled_from(RUSSIAN.split()), st.integers(0, 10_000).map(str),
                                  st.sampled_from([",", ".", "!", "?", "—", ":", "\n"])),
                        max_size=40).map(" ".join)
surrounding = st.one_of(russian_text, st.lists(st.sampled_from(ENGLISH.split()), max_size=12)
                        .map(" ".join))


def only_placeholder_left(redacted: str, before: str, after: str, kind: str) -> bool:
    return redacted == before + PLACEHOLDERS.of(kind) + after


@BOUNDED
@given(secret_keys)
@example(StrKey.encode_ed25519_secret_seed(bytes(32)))  # SAAAA…: no digit in the body
def test_every_valid_secret_key_is_found(key):
    assert redact(key, PLACEHOLDERS).text == PLACEHOLDERS.secret_key


@BOUNDED
@given(secret_keys, st.integers(1, 55), st.sampled_from(BASE32 + "0189"))
def test_a_key_with_one_character_mistyped_is_still_a_key(key, position, typo):
    mistyped = key[:position] + typo + key[position + 1:]
    assert redact(mistyped, PLACEHOLDERS).kinds == (SECRET_KEY,)


@BOUNDED
@given(secret_keys, st.sampled_from(["lower", "title", "upper"]), surrounding, surrounding,
       st.sampled_from([" ", "\n", ": ", " «", "="]), st.sampled_from([" ", "\n", ".", "» ", ""]))
def test_a_key_in_any_case_inside_russian_or_english_text_is_taken_out(
        key, case, before, after, left, right):
    written = {"lower": key.lower(), "title": key[0] + key[1:].lower(), "upper": key}[case]
    prefix, suffix = f"{before}{left}", f"{right}{after}"
    redacted = redact(prefix + written + suffix, PLACEHOLDERS).text
    assert only_placeholder_left(redacted, prefix, suffix, SECRET_KEY)


@BOUNDED
@given(secret_keys, st.lists(st.integers(3, 53), min_size=1, max_size=4, unique=True),
       st.sampled_from([" ", "\n", "-", "  "]))
def test_a_valid_key_split_anywhere_is_found_whole(key, cuts, separator):
    pieces, start = [], 0
    for cut in sorted(cuts):
        pieces.append(key[start:cut])
        start = cut
    pieces.append(key[start:])
    text = f"мой ключ {separator.join(pieces)} спасибо"
    assert redact(text, PLACEHOLDERS).text == "мой ключ [секретный ключ скрыт] спасибо"


@BOUNDED
@given(secret_keys, st.randoms(use_true_random=False))
def test_a_valid_key_in_random_mixed_case_is_found_by_its_checksum(key, rng):
    mixed = "".join(c.lower() if rng.random() < 0.5 else c for c in key)
    assert redact(f"вот {mixed}", PLACEHOLDERS).text == "вот [секретный ключ скрыт]"


@BOUNDED
@given(st.sampled_from([16, 20, 24, 28, 32]).flatmap(lambda n: st.binary(min_size=n,
                                                                         max_size=n)),
       st.sampled_from(["lower", "upper", "title", "first"]),
       st.sampled_from([" ", ", ", ",", "\n", " \n", "numbered", "numbered)"]),
       surrounding, surrounding)
@example(bytes(16), "lower", " ", "", "")  # abandon abandon … about
def test_every_phrase_length_case_and_separator_is_taken_out(entropy, case, separator,
                                                             before, after):
    words = WORDLIST.to_mnemonic(entropy).split()
    assert len(words) in (12, 15, 18, 21, 24)
    styled = {"lower": words, "upper": [w.upper() for w in words],
              "title": [w.title() for w in words],
              "first": [words[0].title(), *words[1:]]}[case]
    if separator.startswith("numbered"):
        mark = separator.removeprefix("numbered") or "."
        typed = "\n".join(f"{n}{mark} {w}" for n, w in enumerate(styled, start=1))
    else:
        typed = separator.join(styled)
    text = f"{before}\n{typed}\n{after}"
    redaction = redact(text, PLACEHOLDERS)
    assert redaction.kinds == (RECOVERY_PHRASE,)
    left = redaction.text.lower().split()
    context = f"{before} {after}".lower().split()
    for word in set(words):  # no word of the phrase is left, beyond the text around it
        assert left.count(word) <= context.count(word), word


@BOUNDED
@given(public_keys, st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32),
       russian_text)
def test_public_keys_muxed_accounts_hashes_and_russian_text_are_left_alone(
        public, muxed_id, digest, text):
    muxed = MuxedAccount(public, muxed_id).account_muxed
    written = (f"{text} {public} {public.lower()} {muxed} {digest.hex()} "
               f"{digest.hex().upper()} {Keypair.random().public_key}")
    assert find_secrets(written) == []


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_is_handled_and_redacting_twice_changes_nothing_more(text):
    once = redact(text, PLACEHOLDERS)
    assert redact(once.text, PLACEHOLDERS).text == once.text
    assert find_secrets(PLACEHOLDERS.secret_key + " " + PLACEHOLDERS.recovery_phrase) == []


@BOUNDED
@given(st.sampled_from([16, 20, 24, 28, 32]).flatmap(lambda n: st.binary(min_size=n,
                                                                         max_size=n)),
       st.integers(0, 23), st.integers(0, 2047))
def test_the_guards_own_bip39_checksum_agrees_with_the_mnemonic_package(entropy, at, number):
    """The guard checks phrase checksums itself (a word index, not the package's list
    scan, which made a repeated word cost seconds); it must agree with the package."""
    words = WORDLIST.to_mnemonic(entropy).split()
    words[at % len(words)] = WORDLIST.wordlist[number]
    index = {word: position for position, word in enumerate(WORDLIST.wordlist)}
    assert bip39_checksum_ok([index[w] for w in words]) == WORDLIST.check(" ".join(words))
