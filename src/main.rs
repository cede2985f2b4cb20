fn main() -> std::process::ExitCode {
    let status = outrig::run();
    std::process::ExitCode::from(status as u8)
}
