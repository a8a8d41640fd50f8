from pipeline_kit.cli import main

main()
