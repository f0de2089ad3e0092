//! Black-box tests of Flex: the real server on a loopback port, real SQLite files and real
//! Postgres databases (`FLEX_TEST_POSTGRES_URL`, default the local server).

mod agents;
mod architecture;
mod audit;
mod auth;
mod bad_input;
mod cli;
mod clients;
mod console;
mod crash;
mod drain;
mod echo;
mod errors;
mod events;
mod faults;
mod hostile_clients;
mod hosts;
mod lifecycle;
mod long_poll;
mod openapi;
mod outage;
mod reconcile;
mod sdp;
mod secrets;
mod serve;
mod shared_objects;
mod store;
mod support;
mod tasks;
mod topology;
mod webhooks;
