//! Security properties checked end to end: secrets never leave Ferric in
//! clear (responses at every microversion, logs at debug level, error
//! messages, start-up failures), and concurrent writers never lose an update.

mod agent_tls;
mod boot_files;
mod concurrency;
mod forwarded;
mod hostile;
mod secrets;
mod tls;
