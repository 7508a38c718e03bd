"""``python -m bertcourse.pretrain`` (and ``torchrun ... -m bertcourse.pretrain``)."""

from bertcourse.pretrain import main

if __name__ == "__main__":
    main()
