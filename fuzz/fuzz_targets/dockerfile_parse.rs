//! Any bytes through the Dockerfile parser, the typed instructions, the stage graph and the
//! expansion of every instruction: nothing may panic.
#![no_main]

use inlay_frontend_dockerfile::stages::{BuildOptions, StageScope};
use inlay_frontend_dockerfile::{instructions, parser, stages};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dockerfile) = parser::parse(data, "Dockerfile") else {
        return;
    };
    let _ = dockerfile.dump();
    let Ok(parsed) = instructions::parse(&dockerfile) else {
        return;
    };
    let options = BuildOptions::default();
    let Ok(graph) = stages::resolve(&dockerfile, &parsed, &options) else {
        return;
    };
    for stage in &parsed.stages {
        let mut scope = StageScope::new(Vec::new(), &graph, &options, dockerfile.escape);
        for located in &stage.instructions {
            let mut instruction = located.instruction.clone();
            if scope.apply(&mut instruction).is_err() {
                break;
            }
            if let instructions::Instruction::Run(run) = &instruction {
                let _ = run.mounts(&mut |v| {
                    scope
                        .expand(v)
                        .map_err(inlay_frontend_dockerfile::ErrorKind::from)
                });
            }
        }
    }
});
