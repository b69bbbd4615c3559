"""Payouts on the Stellar network: newcomers' airdrops and agents' rewards, paid in
batches of unsigned transactions that people sign (the bot holds no key it should not).

The path of an airdrop: the airdrop flow hands a request over with the user's account;
an agent approves it (`approvals.approve`); `navigator airdrop build` turns every
approved request into as few transactions as possible (`batches`, checked against
Horizon: `horizon`) and writes them as XDR files and SEP-7 links (`building`, `airdrop`,
`signing`); signers sign and submit; `navigator airdrop status` sees the hash in a
ledger and marks the requests paid, resolves their tickets and tells each user
(`confirmation`). Rewards: `rewards` counts each agent's month from the ticket log and
splits the pool. The configuration is payouts.yaml (`config`); the records are in
`ledger`; amounts and assets in `assets`.
"""
